/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Helpers the benchmarks share: checked number parsing, a monotonic clock,
 * medians and rate labels.  Header-only: each file in bench/ is a program.
 */
#ifndef EVRING_BENCH_UTIL_H
#define EVRING_BENCH_UTIL_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static inline double median(double *v, unsigned int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

static inline int parse_uint(const char *s, unsigned long max, unsigned int *out)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v > max || *s == '-')
		return -EINVAL;
	*out = v;
	return 0;
}

static inline int parse_list(const char *arg, unsigned long lo, unsigned long hi,
		      unsigned int *v, unsigned int max)
{
	char *s = strdup(arg), *save = NULL, *tok;
	unsigned int n = 0;
	int ret = 0;

	if (!s)
		return -ENOMEM;
	for (tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (n == max || parse_uint(tok, hi, &v[n]) || v[n] < lo) {
			ret = -EINVAL;
			break;
		}
		n++;
	}
	free(s);
	return ret ? ret : (n ? (int)n : -EINVAL);
}

static inline const char *rate_label(double v, char *buf, size_t len)
{
	const char *unit = "";

	if (v >= 1e6) {
		v /= 1e6;
		unit = " M";
	} else if (v >= 1e3) {
		v /= 1e3;
		unit = " k";
	}
	snprintf(buf, len, "%.*f%s", v >= 100 ? 0 : v >= 10 ? 1 : 2, v, unit);
	return buf;
}

#endif /* EVRING_BENCH_UTIL_H */
