/*
 * notify_listen — a stand-in for systemd's notification socket, for the
 * tests (contract §9, style.md §15.8).
 *
 *   notify_listen PATH [SECONDS]
 *
 * Binds an AF_UNIX datagram socket at PATH (a file system path; "@name"
 * for the abstract namespace, as NOTIFY_SOCKET allows) and prints every
 * datagram it receives as one line on stdout, flushed at once:
 *
 *   pid=<sender pid>\t<first assignment>\t<second assignment>...
 *
 * i.e. the newlines that separate the assignments of one sd_notify()
 * message (READY=1\nSTATUS=...) become tabs, so one message is one line and
 * the order of the lines is the order of the messages. The sender's pid
 * comes from SCM_CREDENTIALS (0 when the kernel gave none).
 *
 * Exits 0 after SECONDS (default 300) or on SIGTERM/SIGINT, removing PATH;
 * 64 on a usage error, 1 when the socket cannot be set up. It never waits
 * longer than SECONDS, so a test that forgets it cannot hang on it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE	/* struct ucred */
#endif
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
main(int argc, char **argv)
{
	struct sockaddr_un sa;
	struct sigaction sig;
	socklen_t salen;
	long long deadline;
	long seconds = 300;
	char *end;
	int fd, one = 1;
	size_t plen;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: notify_listen PATH [SECONDS]\n");
		return 64;
	}
	if (argc == 3) {
		errno = 0;
		seconds = strtol(argv[2], &end, 10);
		if (errno != 0 || *end != '\0' || seconds < 1 ||
		    seconds > 86400) {
			fprintf(stderr, "notify_listen: SECONDS: 1..86400\n");
			return 64;
		}
	}
	plen = strlen(argv[1]);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (plen == 0 || plen >= sizeof(sa.sun_path)) {
		fprintf(stderr, "notify_listen: path empty or too long\n");
		return 64;
	}
	memcpy(sa.sun_path, argv[1], plen);
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0';	/* abstract: no trailing NUL */
	else
		salen++, unlink(argv[1]);

	memset(&sig, 0, sizeof(sig));
	sig.sa_handler = on_signal;
	sigemptyset(&sig.sa_mask);
	sigaction(SIGTERM, &sig, NULL);
	sigaction(SIGINT, &sig, NULL);

	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, salen) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) != 0) {
		fprintf(stderr, "notify_listen: %s: %s\n", argv[1],
		    strerror(errno));
		return 1;
	}

	deadline = now_ms() + seconds * 1000LL;
	while (!stop) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		long long left = deadline - now_ms();
		char buf[4096 + 1];
		union {
			struct cmsghdr align;
			char buf[CMSG_SPACE(sizeof(struct ucred))];
		} control;
		struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) - 1 };
		struct msghdr msg = {
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = control.buf,
			.msg_controllen = sizeof(control.buf),
		};
		struct cmsghdr *c;
		pid_t pid = 0;
		ssize_t n;
		int pr;

		if (left <= 0)
			break;
		pr = poll(&pfd, 1, left > 1000 ? 1000 : (int)left);
		if (pr < 0 && errno != EINTR)
			break;
		if (pr <= 0)
			continue;
		n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0)
			continue;
		for (c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c))
			if (c->cmsg_level == SOL_SOCKET &&
			    c->cmsg_type == SCM_CREDENTIALS) {
				struct ucred uc;

				memcpy(&uc, CMSG_DATA(c), sizeof(uc));
				pid = uc.pid;
			} else if (c->cmsg_level == SOL_SOCKET &&
			    c->cmsg_type == SCM_RIGHTS) {
				/* fd store messages: do not leak the fds */
				size_t k = (c->cmsg_len - CMSG_LEN(0)) /
				    sizeof(int);

				for (size_t i = 0; i < k; i++) {
					int sent;

					memcpy(&sent, CMSG_DATA(c) +
					    i * sizeof(int), sizeof(int));
					close(sent);
				}
			}
		/* One message, one line: drop a final newline, tab the rest. */
		while (n > 0 && buf[n - 1] == '\n')
			n--;
		buf[n] = '\0';
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] == '\n')
				buf[i] = '\t';
			else if (buf[i] == '\0')
				buf[i] = ' ';
		printf("pid=%ld\t%s\n", (long)pid, buf);
		fflush(stdout);
	}
	if (sa.sun_path[0] != '\0')
		unlink(argv[1]);
	close(fd);
	return 0;
}
