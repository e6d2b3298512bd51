// Package mount reaches a cgroup hierarchy privately: it makes a detached
// mount of it (fsopen/fsmount) that is attached to no mount tree, so nothing
// can leak into the host's or the container's mounts and there is nothing to
// unmount after a crash. The mount is made, and every file in it is opened, on
// one locked OS thread that can sit in the target's cgroup namespace: a cgroup
// mount made in a cgroup namespace is rooted at that namespace's root, and the
// kernel checks cgroup migrations against the namespace of the thread that
// opened cgroup.procs.
//
// On kernels without fsopen (before 5.2) the same is done with mount(2) in a
// mount namespace private to that thread, detached again at once.
package mount
