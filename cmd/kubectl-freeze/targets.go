package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
)

// DefaultContainerAnnotation names a pod's default container, as kubectl
// exec, logs and debug read it.
const DefaultContainerAnnotation = "kubectl.kubernetes.io/default-container"

// errNoPods: the targets matched no pod at all (exit code exitNoTarget).
var errNoPods = errors.New("no pods")

// targetRef is one TARGET argument: a kind and a name.
type targetRef struct {
	Kind string // pod, deployment, statefulset, replicaset, daemonset
	Name string
}

func (r targetRef) String() string { return r.Kind + "/" + r.Name }

// kindAliases maps what kubectl accepts to the kinds the plugin resolves.
var kindAliases = map[string]string{
	"pod": "pod", "pods": "pod", "po": "pod",
	"deployment": "deployment", "deployments": "deployment", "deploy": "deployment",
	"deployment.apps": "deployment", "deployments.apps": "deployment",
	"statefulset": "statefulset", "statefulsets": "statefulset", "sts": "statefulset",
	"statefulset.apps": "statefulset", "statefulsets.apps": "statefulset",
	"replicaset": "replicaset", "replicasets": "replicaset", "rs": "replicaset",
	"replicaset.apps": "replicaset", "replicasets.apps": "replicaset",
	"daemonset": "daemonset", "daemonsets": "daemonset", "ds": "daemonset",
	"daemonset.apps": "daemonset", "daemonsets.apps": "daemonset",
}

// parseTarget reads "KIND/NAME" or a bare pod NAME.
func parseTarget(arg string) (targetRef, error) {
	kind, name, ok := strings.Cut(arg, "/")
	if !ok {
		kind, name = "pod", arg
	}
	k, known := kindAliases[strings.ToLower(kind)]
	switch {
	case !known:
		return targetRef{}, fmt.Errorf("target %q: unknown kind %q: use pod/, deployment/, statefulset/, replicaset/ or daemonset/", arg, kind)
	case name == "" || strings.Contains(name, "/"):
		return targetRef{}, fmt.Errorf("target %q: want KIND/NAME or a pod NAME", arg)
	}
	return targetRef{Kind: k, Name: name}, nil
}

// selectorOf returns the pod selector of a workload.
func selectorOf(ctx context.Context, c kubernetes.Interface, ns string, r targetRef) (labels.Selector, error) {
	var sel *metav1.LabelSelector
	var err error
	apps := c.AppsV1()
	get := metav1.GetOptions{}
	switch r.Kind {
	case "deployment":
		d, e := apps.Deployments(ns).Get(ctx, r.Name, get)
		err = e
		if err == nil {
			sel = d.Spec.Selector
		}
	case "statefulset":
		s, e := apps.StatefulSets(ns).Get(ctx, r.Name, get)
		err = e
		if err == nil {
			sel = s.Spec.Selector
		}
	case "replicaset":
		s, e := apps.ReplicaSets(ns).Get(ctx, r.Name, get)
		err = e
		if err == nil {
			sel = s.Spec.Selector
		}
	case "daemonset":
		s, e := apps.DaemonSets(ns).Get(ctx, r.Name, get)
		err = e
		if err == nil {
			sel = s.Spec.Selector
		}
	default:
		return nil, fmt.Errorf("%s has no pod selector", r)
	}
	if err != nil {
		return nil, fmt.Errorf("get %s in namespace %s: %w", r, ns, err)
	}
	if sel == nil || (len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0) {
		return nil, fmt.Errorf("%s has an empty pod selector: it would select every pod", r)
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return nil, fmt.Errorf("the pod selector of %s: %w", r, err)
	}
	return s, nil
}

// Selection is what the targets resolved to.
type Selection struct {
	// Pods are the running pods to act on, sorted by name.
	Pods []corev1.Pod
	// Skipped are pods the targets matched that cannot be acted on (not
	// running, being deleted), with why.
	Skipped map[string]string
	// Selectors select the targets' pods (for --follow): one per
	// workload or -l; none for pods named one by one.
	Selectors []labels.Selector
}

// resolveTargets lists the pods of the targets and of a label selector in
// one namespace. A named pod that does not exist is an error; a workload
// whose selector matches nothing is not (the whole selection may still be
// empty: errNoPods).
func resolveTargets(ctx context.Context, c kubernetes.Interface, ns string, args []string, selector string) (*Selection, error) {
	sel := &Selection{Skipped: map[string]string{}}
	seen := map[string]bool{}
	add := func(p corev1.Pod) {
		if seen[p.Name] {
			return
		}
		seen[p.Name] = true
		if why := notFreezable(p); why != "" {
			sel.Skipped[p.Name] = why
			return
		}
		sel.Pods = append(sel.Pods, p)
	}
	list := func(s labels.Selector) error {
		l, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: s.String()})
		if err != nil {
			return fmt.Errorf("list the pods with %q in namespace %s: %w", s, ns, err)
		}
		sel.Selectors = append(sel.Selectors, s)
		for _, p := range l.Items {
			add(p)
		}
		return nil
	}
	for _, a := range args {
		r, err := parseTarget(a)
		if err != nil {
			return nil, err
		}
		if r.Kind == "pod" {
			p, err := c.CoreV1().Pods(ns).Get(ctx, r.Name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return nil, fmt.Errorf("%w: pod %s not found in namespace %s", errNoPods, r.Name, ns)
			}
			if err != nil {
				return nil, fmt.Errorf("get pod %s in namespace %s: %w", r.Name, ns, err)
			}
			add(*p)
			continue
		}
		s, err := selectorOf(ctx, c, ns, r)
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("%w: %s not found in namespace %s", errNoPods, r, ns)
		}
		if err != nil {
			return nil, err
		}
		if err := list(s); err != nil {
			return nil, err
		}
	}
	if selector != "" {
		s, err := labels.Parse(selector)
		if err != nil {
			return nil, fmt.Errorf("--selector %q: %w", selector, err)
		}
		if err := list(s); err != nil {
			return nil, err
		}
	}
	sort.Slice(sel.Pods, func(i, j int) bool { return sel.Pods[i].Name < sel.Pods[j].Name })
	if len(sel.Pods) == 0 {
		var why []string
		for name, w := range sel.Skipped {
			why = append(why, name+": "+w)
		}
		sort.Strings(why)
		if len(why) > 0 {
			return sel, fmt.Errorf("%w to act on in namespace %s (%s)", errNoPods, ns, strings.Join(why, "; "))
		}
		return sel, fmt.Errorf("%w matched in namespace %s", errNoPods, ns)
	}
	return sel, nil
}

// notFreezable says why a pod cannot be acted on, or "".
func notFreezable(p corev1.Pod) string {
	switch {
	case p.DeletionTimestamp != nil:
		return "being deleted"
	case p.Status.Phase != corev1.PodRunning:
		return "not running (phase " + string(p.Status.Phase) + ")"
	}
	return ""
}

// targetContainer picks the container to freeze in a pod: the one named,
// else the pod's default-container annotation, else its only or first
// container. It returns the container's name and ID from the pod's status
// ("containerd://..."), which cgfreeze's --container-id takes.
func targetContainer(p *corev1.Pod, name string) (string, string, error) {
	if name == "" {
		name = p.Annotations[DefaultContainerAnnotation]
	}
	if name == "" && len(p.Spec.Containers) > 0 {
		name = p.Spec.Containers[0].Name
	}
	found := false
	var names []string
	for _, c := range p.Spec.Containers {
		names = append(names, c.Name)
		found = found || c.Name == name
	}
	if !found {
		return "", "", fmt.Errorf("pod %s has no container %q (its containers: %s)", p.Name, name, strings.Join(names, ", "))
	}
	for _, s := range p.Status.ContainerStatuses {
		if s.Name != name {
			continue
		}
		if s.State.Running == nil || s.ContainerID == "" {
			return "", "", fmt.Errorf("pod %s: container %s is not running", p.Name, name)
		}
		return name, s.ContainerID, nil
	}
	return "", "", fmt.Errorf("pod %s: container %s has no status yet", p.Name, name)
}
