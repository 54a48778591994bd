/*
 * forkserve PORT UID [REQUESTS]: a pre-forking server in miniature, as
 * nginx runs: it listens on 127.0.0.1:PORT as the caller (root), forks a
 * worker that drops to UID with setresuid (no exec) and answers "hi" to
 * REQUESTS connections (default 1), and waits for it. It exits with the
 * worker's status, 128 + the signal when the worker was killed.
 */
#define _GNU_SOURCE /* setresuid */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	int n = argc > 3 ? atoi(argv[3]) : 1;
	uid_t uid = (uid_t)atoi(argv[2]);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[1])) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int one = 1;
	int l = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0 || setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 8))
		return 3;
	pid_t pid = fork();
	if (pid < 0)
		return 4;
	if (pid == 0) {
		if (setresuid(uid, uid, uid))
			_exit(10);
		for (int i = 0; i < n; i++) {
			int c = accept(l, NULL, NULL);
			if (c < 0)
				_exit(11);
			if (write(c, "hi", 2) != 2)
				_exit(12);
			close(c);
		}
		_exit(0);
	}
	int st;
	if (waitpid(pid, &st, 0) < 0)
		return 5;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
