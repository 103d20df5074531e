/*
 * fds.h — for unit tests that check no descriptor is leaked: how many this
 * process has open. Header-only (each test is one file).
 */
#ifndef TEST_FDS_H
#define TEST_FDS_H

#include <dirent.h>

/* Descriptors this process has open (/proc/self/fd, less the DIR's own). */
static int
open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1;
}

#endif
