// SPDX-License-Identifier: Apache-2.0
/*
 * bulwark-runc-front: the runtime Docker runs when it is installed beside
 * bulwark-runc (`bulwark install docker` registers it then). Docker calls
 * its runtime four times per container (create, start and two deletes)
 * and only create (or run) needs Bulwark: this static C program execs
 * bulwark-runc, beside it, for those, and the real runc at once for the
 * known subcommands that create nothing. A Go executable's start costs
 * about 2.5 ms more than this one's (page faults of its runtime), which
 * the other three calls no longer pay.
 *
 * Whatever it does not recognise goes to bulwark-runc, which decides
 * exactly as without the front: an unknown global option (it might take a
 * value and hide the subcommand), an unknown subcommand, a settings file
 * whose "runc" it cannot read plainly.
 *
 * The real runc is bulwark-runc.json's "runc" (beside this program), or
 * "runc" from PATH without the file, as bulwark-runc reads it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* runc's global options that take a value (hook.ParseRuncArgs's list). */
static const char *value_opts[] = { "--root", "--log", "--log-format", "--criu", "--rootless", NULL };
/* runc's global options without a value. */
static const char *flag_opts[] = { "--debug", "--systemd-cgroup", "--help", "-h", "--version", "-v", NULL };
/* Subcommands that create no container: straight to runc. */
static const char *passthrough[] = { "start",	"delete", "kill",   "state",	"ps",	"events", "pause",
				     "resume",	"exec",	  "update", "checkpoint", "list", "features", NULL };

static int in(const char *s, const char **set)
{
	for (; *set; set++)
		if (!strcmp(s, *set))
			return 1;
	return 0;
}

/* subcommand_passes reports whether argv (after argv[0]) is a call that
 * creates no container, read as runc reads its global options. */
static int subcommand_passes(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (a[0] != '-')
			return in(a, passthrough);
		if (in(a, value_opts)) {
			i++;
			continue;
		}
		const char *eq = strchr(a, '=');
		if (eq) {
			char name[64];
			size_t n = eq - a;
			if (n >= sizeof(name))
				return 0;
			memcpy(name, a, n);
			name[n] = 0;
			if (in(name, value_opts))
				continue;
			return 0;
		}
		if (!in(a, flag_opts))
			return 0;
	}
	return 1; /* only options: runc --version and the like */
}

/* read_runc puts the settings file's "runc" in out (empty: none set);
 * it fails when the file is there but its "runc" is not plain. */
static int read_runc(const char *path, char *out, size_t size)
{
	out[0] = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	char buf[8192];
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0 || n == sizeof(buf) - 1)
		return -1;
	buf[n] = 0;
	char *k = strstr(buf, "\"runc\"");
	if (!k)
		return 0;
	if (strstr(k + 1, "\"runc\""))
		return -1; /* twice: let the JSON decoder judge */
	char *p = k + 6;
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	if (*p++ != ':')
		return -1;
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	if (*p++ != '"')
		return -1;
	char *end = strchr(p, '"');
	if (!end || memchr(p, '\\', end - p) || (size_t)(end - p) >= size || end == p)
		return -1;
	memcpy(out, p, end - p);
	out[end - p] = 0;
	return 0;
}

int main(int argc, char **argv)
{
	char self[PATH_MAX], path[PATH_MAX + 32], runc[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0 || n >= (ssize_t)sizeof(self) - 1) {
		perror("bulwark-runc-front: /proc/self/exe");
		return 1;
	}
	self[n] = 0;
	char *slash = strrchr(self, '/');
	*slash = 0;
	if (subcommand_passes(argc, argv)) {
		snprintf(path, sizeof(path), "%s/bulwark-runc.json", self);
		if (read_runc(path, runc, sizeof(runc)) == 0) {
			argv[0] = runc[0] ? runc : "runc";
			execvp(argv[0], argv);
			fprintf(stderr, "bulwark-runc-front: exec %s: %s\n", runc[0] ? runc : "runc", strerror(errno));
			return 1;
		}
	}
	snprintf(path, sizeof(path), "%s/bulwark-runc", self);
	argv[0] = "bulwark-runc";
	execv(path, argv);
	fprintf(stderr, "bulwark-runc-front: exec %s: %s\n", path, strerror(errno));
	return 1;
}
