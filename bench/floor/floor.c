/*
 * floor: the C floor of the bench (bench/floors.go builds it with the
 * system's gcc, static, at bench time). It does only what a freeze cannot
 * do without: read /proc/PID/cgroup once, open the freezer file, write it,
 * confirm that the kernel says frozen; then it waits for SIGTERM and thaws
 * the same way. With "watchdog" it forks a child before the write that
 * thaws the cgroup if this process dies before its thaw: the child holds the
 * read end of a pipe whose write end only this process holds, so the guard
 * stands from the fork on (EOF at the parent's death, whenever the child
 * reads), without waiting for the child.
 *
 * usage: floor v1|v2 MOUNTPOINT PID [watchdog]
 *   v1: MOUNTPOINT is the freezer hierarchy's; v2: cgroup2's.
 * stdout: "frozen" once frozen, "thawed" once thawed. Exit 0; 2 bad usage;
 * 3 a cgroup file failed or the state did not come within 20 s.
 *
 * usage: floor look MS FILE...
 *   the idle floor of a hold: every MS milliseconds (a timerfd in an epoll
 *   instance) it re-reads each FILE, kept open, with pread at offset 0, as
 *   cgfreeze's hold makes its periodic look; until it is killed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

enum { DEADLINE_S = 20 };

static int v2;
static int state_fd = -1;  /* v1 freezer.state (rw), v2 cgroup.freeze */
static int events_fd = -1; /* v2 cgroup.events */

static void die(const char *what, const char *path) {
	fprintf(stderr, "floor: %s %s: %s\n", what, path, strerror(errno));
	exit(3);
}

static int set_state(int frozen) {
	const char *v = v2 ? (frozen ? "1" : "0") : (frozen ? "FROZEN" : "THAWED");
	return pwrite(state_fd, v, strlen(v), 0) < 0 ? -1 : 0;
}

/* is_state reads the kernel's state: 1 when it is want. */
static int is_state(int want) {
	char buf[256];
	ssize_t n = pread(v2 ? events_fd : state_fd, buf, sizeof buf - 1, 0);
	if (n < 0)
		die("read", "state");
	buf[n] = 0;
	if (!v2)
		return strncmp(buf, want ? "FROZEN" : "THAWED", 6) == 0;
	char *p = strstr(buf, "frozen ");
	return p && p[7] == (want ? '1' : '0');
}

static double ms_since(const struct timespec *t0) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1e3 + (t.tv_nsec - t0->tv_nsec) / 1e6;
}

/*
 * wait_state re-reads the state until it is want: at once and for the first
 * SPIN_MS, then (v2) by poll(2) on cgroup.events with a 1 ms timeout. Not
 * by poll alone: the kernel sends at most 100 notifications a second per
 * cgroup file and defers later ones by a timer, which delayed the wake-up
 * by 1 to 15 ms here where a re-read said frozen within 0.1 ms. v1 has no
 * notification: re-read.
 */
enum { SPIN_MS = 2 };

static void wait_state(int want) {
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!is_state(want)) {
		double ms = ms_since(&t0);
		if (ms > DEADLINE_S * 1000) {
			errno = ETIMEDOUT;
			die("wait for", want ? "frozen" : "thawed");
		}
		if (v2 && ms > SPIN_MS) {
			struct pollfd p = {.fd = events_fd, .events = POLLPRI};
			poll(&p, 1, 1);
		}
	}
}

/* look is "floor look MS FILE...": see the usage above. */
static int look(int argc, char **argv) {
	long ms = atol(argv[2]);
	if (ms <= 0 || argc - 3 > 16) {
		fprintf(stderr, "usage: floor look MS FILE... (MS > 0, at most 16 files)\n");
		return 2;
	}
	int fds[16], nf = argc - 3;
	for (int i = 0; i < nf; i++)
		if ((fds[i] = open(argv[3 + i], O_RDONLY | O_CLOEXEC)) < 0)
			die("open", argv[3 + i]);
	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct itimerspec its = {{ms / 1000, (ms % 1000) * 1000000}, {ms / 1000, (ms % 1000) * 1000000}};
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = tfd};
	if (tfd < 0 || ep < 0 || timerfd_settime(tfd, 0, &its, NULL) < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev) < 0)
		die("timerfd", "");
	if (write(1, "looking\n", 8) != 8)
		die("write", "stdout");
	for (;;) {
		struct epoll_event out[4];
		uint64_t ticks;
		char buf[512];
		if (epoll_wait(ep, out, 4, -1) < 0 && errno != EINTR)
			die("epoll_wait", "");
		if (read(tfd, &ticks, sizeof ticks) < 0 && errno != EAGAIN)
			die("read", "timerfd");
		for (int i = 0; i < nf; i++)
			if (pread(fds[i], buf, sizeof buf, 0) < 0)
				die("pread", argv[3 + i]);
	}
}

int main(int argc, char **argv) {
	if (argc >= 4 && strcmp(argv[1], "look") == 0)
		return look(argc, argv);
	if (argc < 4 || argc > 5 || (strcmp(argv[1], "v1") && strcmp(argv[1], "v2")) ||
	    (argc == 5 && strcmp(argv[4], "watchdog"))) {
		fprintf(stderr, "usage: floor v1|v2 MOUNTPOINT PID [watchdog]\n");
		return 2;
	}
	v2 = argv[1][1] == '2';
	int watchdog = argc == 5;

	char path[4096], buf[8192];
	snprintf(path, sizeof path, "/proc/%s/cgroup", argv[3]);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die("open", path);
	ssize_t n = read(fd, buf, sizeof buf - 1);
	if (n < 0)
		die("read", path);
	buf[n] = 0;
	close(fd);
	/* "ID:CONTROLLERS:PATH" lines: v2's is "0::PATH", v1's lists freezer. */
	char *cg = NULL;
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
		char *c1 = strchr(line, ':');
		char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c2 = 0;
		int match = v2 ? strcmp(line, "0:") == 0 : strstr(c1 + 1, "freezer") != NULL;
		if (match) {
			cg = c2 + 1;
			break;
		}
	}
	if (!cg) {
		fprintf(stderr, "floor: %s has no %s line\n", path, v2 ? "cgroup2" : "freezer");
		return 3;
	}
	snprintf(path, sizeof path, "%s%s/%s", argv[2], cg, v2 ? "cgroup.freeze" : "freezer.state");
	state_fd = open(path, (v2 ? O_WRONLY : O_RDWR) | O_CLOEXEC);
	if (state_fd < 0)
		die("open", path);
	if (v2) {
		snprintf(path, sizeof path, "%s%s/cgroup.events", argv[2], cg);
		events_fd = open(path, O_RDONLY | O_CLOEXEC);
		if (events_fd < 0)
			die("open", path);
	}

	/* SIGTERM is taken with sigwait: blocked from here on. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);

	int guard[2] = {-1, -1};
	pid_t child = -1;
	if (watchdog) {
		if (pipe(guard) < 0)
			die("pipe", "");
		child = fork();
		if (child < 0)
			die("fork", "");
		if (child == 0) {
			close(guard[1]);
			char c;
			ssize_t r;
			do
				r = read(guard[0], &c, 1);
			while (r < 0 && errno == EINTR);
			if (r == 1 && c == 'd')
				_exit(0); /* the parent thawed */
			set_state(0); /* the parent died: restore */
			_exit(1);
		}
		close(guard[0]);
	}

	if (set_state(1) < 0)
		die("write", "frozen");
	wait_state(1);
	if (write(1, "frozen\n", 7) != 7)
		die("write", "stdout");

	int sig;
	sigwait(&set, &sig);
	if (set_state(0) < 0)
		die("write", "thawed");
	wait_state(0);
	if (watchdog) {
		if (write(guard[1], "d", 1) != 1)
			die("write", "guard");
		waitpid(child, NULL, 0);
	}
	if (write(1, "thawed\n", 7) != 7)
		die("write", "stdout");
	return 0;
}
