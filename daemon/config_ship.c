// SPDX-License-Identifier: GPL-2.0-only
/*
 * config_ship: the checks of the shipping values ([ship] and [region NAME])
 * that are more than a number or a path: region and stream names, NATS
 * subject prefixes, server URL lists and the metrics listen address.  Pure
 * string functions, no state; config.c's key table calls them (see
 * config.h).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "config.h"

static int why_fail(char *why, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int why_fail(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* [A-Za-z0-9_-]: a NATS subject token, a stream name, a region name. */
static bool name_char(char ch)
{
	return isalnum((unsigned char)ch) || ch == '_' || ch == '-';
}

int config_check_name(const char *v, size_t max, char *why, size_t len)
{
	size_t n = strlen(v);

	if (n == 0 || n > max)
		return why_fail(why, len, "must be 1..%zu characters", max);
	for (size_t i = 0; i < n; i++)
		if (!name_char(v[i]))
			return why_fail(why, len,
					"only letters, digits, '_' and '-' allowed");
	return 0;
}

int config_check_subject_prefix(const char *v, char *why, size_t len)
{
	size_t n = strlen(v);

	if (n == 0 || n > CONFIG_SUBJECT_PREFIX_MAX)
		return why_fail(why, len, "must be 1..%d characters",
				CONFIG_SUBJECT_PREFIX_MAX);
	for (size_t i = 0; i < n; i++) {
		if (v[i] == '.') {
			if (i == 0 || i == n - 1 || v[i + 1] == '.')
				return why_fail(why, len,
						"empty subject token (a '.' at either end or '..')");
			continue;
		}
		if (!name_char(v[i]))
			return why_fail(why, len,
					"only letters, digits, '_', '-' and '.' between tokens allowed");
	}
	return 0;
}

/* "1".."65535", decimal digits only. */
static int parse_port(const char *p, size_t n, unsigned int *port)
{
	unsigned int v = 0;

	if (n == 0 || n > 5)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)p[i]))
			return -EINVAL;
		v = v * 10 + (unsigned int)(p[i] - '0');
	}
	if (v < 1 || v > 65535)
		return -EINVAL;
	*port = v;
	return 0;
}

/* A DNS name or IPv4 literal: labels of [A-Za-z0-9-] (and '_') with dots. */
static bool host_ok(const char *h, size_t n)
{
	if (n == 0 || n > 253 || h[0] == '.' || h[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		if (h[i] == '.' && h[i + 1] == '.')
			return false;
		if (h[i] != '.' && !name_char(h[i]))
			return false;
	}
	return true;
}

/* "[v6]" with @n bytes: an IPv6 literal in brackets. */
static bool v6_ok(const char *h, size_t n, struct in6_addr *a)
{
	char buf[INET6_ADDRSTRLEN + 1];

	if (n < 3 || h[0] != '[' || h[n - 1] != ']' || n - 2 >= sizeof(buf))
		return false;
	memcpy(buf, h + 1, n - 2);
	buf[n - 2] = '\0';
	return inet_pton(AF_INET6, buf, a) == 1;
}

/* One "scheme://host:port" of urls, @n bytes at @u. */
static int check_url(const char *u, size_t n, char *why, size_t len)
{
	const char *hp, *colon, *end = u + n;
	struct in6_addr a6;
	unsigned int port;

	if (n > 7 && !strncmp(u, "nats://", 7))
		hp = u + 7;
	else if (n > 6 && !strncmp(u, "tls://", 6))
		hp = u + 6;
	else
		return why_fail(why, len,
				"'%.*s' is not a nats:// or tls:// URL",
				(int)n, u);
	colon = memrchr(hp, ':', end - hp);
	if (!colon || parse_port(colon + 1, end - colon - 1, &port) < 0)
		return why_fail(why, len,
				"'%.*s' needs a port 1..65535 ('scheme://host:port')",
				(int)n, u);
	if (*hp == '[' ? !v6_ok(hp, colon - hp, &a6) :
			 !host_ok(hp, colon - hp))
		return why_fail(why, len, "'%.*s' has a bad host", (int)n, u);
	return 0;
}

int config_parse_urls(const char *v, char *out, size_t outlen, char *why,
		      size_t len)
{
	char *buf;
	size_t used = 0;
	int ret = 0;

	buf = malloc(outlen);
	if (!buf)
		return why_fail(why, len, "out of memory");
	if (!*v)
		ret = why_fail(why, len, "must not be empty");
	while (!ret && *v) {
		size_t n;

		v += strspn(v, " \t");
		n = strcspn(v, ", \t");
		if (n == 0) {
			ret = why_fail(why, len, "empty entry in the list");
			break;
		}
		ret = check_url(v, n, why, len);
		if (ret)
			break;
		if (used + !!used + n >= outlen) {
			ret = why_fail(why, len,
				       "longer than %zu characters",
				       outlen - 1);
			break;
		}
		if (used)
			buf[used++] = ',';
		memcpy(buf + used, v, n);
		used += n;
		v += n;
		v += strspn(v, " \t");
		if (*v == ',') {
			v++;
			if (!*(v + strspn(v, " \t")))
				ret = why_fail(why, len,
					       "empty entry in the list");
		} else if (*v) {
			ret = why_fail(why, len,
				       "separate the URLs with commas");
		}
	}
	if (!ret) {
		memset(out, 0, outlen);
		memcpy(out, buf, used);
	}
	free(buf);
	return ret;
}

int config_listen_addr(const char *v, struct sockaddr_storage *ss,
		       socklen_t *sslen, char *why, size_t len)
{
	const char *colon = strrchr(v, ':');
	struct sockaddr_storage tmp;
	socklen_t tmplen;
	unsigned int port;
	char host[INET6_ADDRSTRLEN + 3];
	size_t hl;

	if (!colon || parse_port(colon + 1, strlen(colon + 1), &port) < 0)
		return why_fail(why, len,
				"expected HOST:PORT with a port 1..65535");
	hl = colon - v;
	if (hl == 0 || hl >= sizeof(host))
		return why_fail(why, len,
				"expected an IPv4 address or [IPv6 address] before the port");
	memcpy(host, v, hl);
	host[hl] = '\0';
	memset(&tmp, 0, sizeof(tmp));
	if (host[0] == '[') {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&tmp;

		if (!v6_ok(host, hl, &s6->sin6_addr))
			return why_fail(why, len,
					"'%s' is not an [IPv6 address]", host);
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		tmplen = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&tmp;

		if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
			return why_fail(why, len,
					"'%s' is not an IPv4 address (names are not resolved; use [..] for IPv6)",
					host);
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		tmplen = sizeof(*s4);
	}
	if (ss)
		*ss = tmp;
	if (sslen)
		*sslen = tmplen;
	return 0;
}

const char *config_ship_mode_name(enum config_ship_mode m)
{
	return m == CONFIG_SHIP_FAILOVER ? "failover" : "replicate";
}
