// SPDX-License-Identifier: GPL-2.0-only
/*
 * config: the INI file through libinih, every key described once in keys[]
 * (where it lives, how it parses, whether SIGHUP may change it).  See
 * config.h for the contract.
 *
 * libinih does the syntax; two things it cannot report are done by the
 * line reader we hand it (read_line): the line number of a handler error,
 * and lines it would silently split (longer than its fixed 200-byte buffer)
 * or truncate (a NUL byte).  It also rejects unknown sections as their
 * header is read, because libinih calls the handler only for keys, and
 * opens the [region NAME] sections there (libinih would cut a long NAME
 * at 49 characters, and an empty section would never reach the handler).
 *
 * [region NAME] keys are in keys[] like the rest (section "region"), with
 * offsets into struct config_region; at_region() points one at a region.
 * Checks that involve more than one key (whole_check) run after the whole
 * file, and after each --set.  The shipping values' own checks are in
 * config_ship.c.
 */
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#include "capture.h"
#include "config.h"

_Static_assert(EVRING_BPF_NR_CAPTURES <= CONFIG_BPF_CAPTURES_MAX,
	       "capture ids fit the masks");
_Static_assert(CONFIG_BPF_PREFIX_MAX == EVRING_BPF_PREFIX_MAX &&
	       CONFIG_BPF_LIST_MAX == EVRING_BPF_PREFIXES,
	       "bpf.open_prefixes fits the open_prefix map");

/* --- value parsers ---------------------------------------------------- */

struct key;
/* 0, or -EINVAL with why filled in; writes only its own field of @c. */
typedef int (*parse_fn)(const struct key *k, const char *v,
			struct evd_config *c, char *why, size_t whylen);

enum cmp { CMP_STR, CMP_MEM, CMP_UIDS, CMP_GIDS };

struct key {
	const char *section;
	const char *name;
	parse_fn parse;
	size_t off;		/* of the field in struct evd_config */
	size_t size;		/* of the field */
	enum cmp cmp;
	uint64_t min, max;	/* numbers and sizes */
	bool empty_ok;		/* paths: "" disables */
	bool live;		/* SIGHUP may change it */
	bool region;		/* off is into struct config_region */
};

static void *field(const struct key *k, struct evd_config *c)
{
	return (char *)c + k->off;
}

static const void *cfield(const struct key *k, const struct evd_config *c)
{
	return (const char *)c + k->off;
}

static int fail(char *why, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/*
 * A decimal number, optionally followed by one of @suffixes' letters
 * (K, M, G, T: powers of 1024) when @suffixes is set.  No sign, no
 * spaces, no hex: exactly what an operator would write.
 */
static int parse_number(const char *v, bool suffixes, uint64_t *out,
			char *why, size_t len)
{
	unsigned long long n;
	unsigned int shift = 0;
	char *end;

	if (!isdigit((unsigned char)v[0]))
		return fail(why, len, "not a number");
	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno == ERANGE)
		return fail(why, len, "number too large");
	if (*end && suffixes) {
		static const char units[] = "KMGT";
		const char *u = strchr(units, toupper((unsigned char)*end));

		if (!u || end[1])
			return fail(why, len,
				    "bad size suffix '%s' (use K, M, G or T)",
				    end);
		shift = 10 * (unsigned int)(u - units + 1);
		end++;
		if (n > (UINT64_MAX >> shift))
			return fail(why, len, "number too large");
		n <<= shift;
	}
	if (*end)
		return fail(why, len, "not a number");
	*out = n;
	return 0;
}

/* "1048576" as "1M" when it is a whole multiple, for range messages. */
static void format_size(uint64_t n, char *buf, size_t len)
{
	static const char units[] = "KMGTP";
	int u = -1;

	while (n && !(n & 1023) && u < 4) {
		n >>= 10;
		u++;
	}
	if (u < 0)
		snprintf(buf, len, "%llu", (unsigned long long)n);
	else
		snprintf(buf, len, "%llu%c", (unsigned long long)n, units[u]);
}

static int check_range(const struct key *k, uint64_t n, bool size, char *why,
		       size_t len)
{
	char lo[32], hi[32];

	if (n >= k->min && n <= k->max)
		return 0;
	if (size) {
		format_size(k->min, lo, sizeof(lo));
		format_size(k->max, hi, sizeof(hi));
	} else {
		snprintf(lo, sizeof(lo), "%llu", (unsigned long long)k->min);
		snprintf(hi, sizeof(hi), "%llu", (unsigned long long)k->max);
	}
	return fail(why, len, "out of range (%s..%s)", lo, hi);
}

static int parse_u32(const struct key *k, const char *v, struct evd_config *c,
		     char *why, size_t len)
{
	uint64_t n;
	int err;

	err = parse_number(v, false, &n, why, len);
	if (!err)
		err = check_range(k, n, false, why, len);
	if (err)
		return err;
	if (k->size == sizeof(uint32_t))	/* or a uint64_t */
		*(uint32_t *)field(k, c) = (uint32_t)n;
	else
		*(uint64_t *)field(k, c) = n;
	return 0;
}

/* A byte count with an optional K/M/G/T suffix, into a u32 or u64. */
static int parse_size(const struct key *k, const char *v,
		      struct evd_config *c, char *why, size_t len)
{
	uint64_t n;
	int err;

	err = parse_number(v, true, &n, why, len);
	if (!err)
		err = check_range(k, n, true, why, len);
	if (err)
		return err;
	if (k->size == sizeof(uint32_t))
		*(uint32_t *)field(k, c) = (uint32_t)n;
	else
		*(uint64_t *)field(k, c) = n;
	return 0;
}

static int parse_sync(const struct key *k, const char *v,
		      struct evd_config *c, char *why, size_t len)
{
	if (!strcmp(v, "full"))
		c->spool_synchronous = CONFIG_SYNC_FULL;
	else if (!strcmp(v, "normal"))
		c->spool_synchronous = CONFIG_SYNC_NORMAL;
	else
		return fail(why, len, "expected 'full' or 'normal'");
	return 0;
}

static bool host_id_char(char ch)
{
	return isalnum((unsigned char)ch) || ch == '.' || ch == '_' ||
	       ch == '-';
}

static int parse_host_id(const struct key *k, const char *v,
			 struct evd_config *c, char *why, size_t len)
{
	size_t n = strlen(v);

	if (n == 0 || n > CONFIG_HOST_ID_MAX)
		return fail(why, len, "must be 1..%d characters",
			    CONFIG_HOST_ID_MAX);
	for (size_t i = 0; i < n; i++)
		if (!host_id_char(v[i]))
			return fail(why, len,
				    "only letters, digits, '.', '_' and '-' allowed");
	memcpy(c->host_id, v, n + 1);
	return 0;
}

/* An absolute path that fits its field (for sockets: sun_path). */
static int parse_path(const struct key *k, const char *v,
		      struct evd_config *c, char *why, size_t len)
{
	size_t n = strlen(v);

	if (n == 0 && !k->empty_ok)
		return fail(why, len, "must not be empty");
	if (n && v[0] != '/')
		return fail(why, len, "must be an absolute path");
	if (n >= k->size)
		return fail(why, len, "longer than %zu characters",
			    k->size - 1);
	memset(field(k, c), 0, k->size);
	memcpy(field(k, c), v, n);
	return 0;
}

/* One uid: a number or a user name. */
static int parse_one_id(const char *tok, bool group, uint32_t *out,
			char *why, size_t len)
{
	char buf[4096];
	uint64_t n;
	int err;

	if (isdigit((unsigned char)tok[0])) {
		err = parse_number(tok, false, &n, why, len);
		if (err)
			return fail(why, len, "'%s' is not a number or a name",
				    tok);
		if (n >= UINT32_MAX)	/* (uid_t)-1 means "no id" */
			return fail(why, len, "%s %llu is out of range",
				    group ? "gid" : "uid",
				    (unsigned long long)n);
		*out = (uint32_t)n;
		return 0;
	}
	if (group) {
		struct group g, *res = NULL;

		err = getgrnam_r(tok, &g, buf, sizeof(buf), &res);
		if (!res)
			return err ? fail(why, len, "cannot look up group '%s': %s",
					  tok, strerror(err)) :
				     fail(why, len, "unknown group '%s'", tok);
		*out = res->gr_gid;
	} else {
		struct passwd p, *res = NULL;

		err = getpwnam_r(tok, &p, buf, sizeof(buf), &res);
		if (!res)
			return err ? fail(why, len, "cannot look up user '%s': %s",
					  tok, strerror(err)) :
				     fail(why, len, "unknown user '%s'", tok);
		*out = res->pw_uid;
	}
	return 0;
}

/* A list of ids separated by commas and/or spaces; duplicates folded. */
static int parse_ids(const char *v, bool group, uint32_t *ids,
		     unsigned int *nr, char *why, size_t len)
{
	uint32_t tmp[CONFIG_ALLOW_MAX];
	unsigned int n = 0;
	char tok[256];

	while (*v) {
		size_t tl = strcspn(v, ", \t");
		uint32_t id;
		bool dup = false;
		int err;

		if (tl == 0) {
			v++;
			continue;
		}
		if (tl >= sizeof(tok))
			return fail(why, len, "entry too long");
		memcpy(tok, v, tl);
		tok[tl] = '\0';
		v += tl;
		err = parse_one_id(tok, group, &id, why, len);
		if (err)
			return err;
		for (unsigned int i = 0; i < n; i++)
			dup |= tmp[i] == id;
		if (dup)
			continue;
		if (n == CONFIG_ALLOW_MAX)
			return fail(why, len, "too many entries (max %d)",
				    CONFIG_ALLOW_MAX);
		tmp[n++] = id;
	}
	memcpy(ids, tmp, n * sizeof(*ids));
	*nr = n;
	return 0;
}

static int parse_uids(const struct key *k, const char *v,
		      struct evd_config *c, char *why, size_t len)
{
	_Static_assert(sizeof(uid_t) == sizeof(uint32_t), "uid_t is 32 bits");
	return parse_ids(v, false, (uint32_t *)c->allow_uid, &c->nr_allow_uid,
			 why, len);
}

static int parse_gids(const struct key *k, const char *v,
		      struct evd_config *c, char *why, size_t len)
{
	_Static_assert(sizeof(gid_t) == sizeof(uint32_t), "gid_t is 32 bits");
	return parse_ids(v, true, (uint32_t *)c->allow_gid, &c->nr_allow_gid,
			 why, len);
}

/* "yes" or "no", into a uint32_t (1 or 0). */
static int parse_bool(const struct key *k, const char *v,
		      struct evd_config *c, char *why, size_t len)
{
	if (strcmp(v, "yes") && strcmp(v, "no"))
		return fail(why, len, "expected 'yes' or 'no'");
	*(uint32_t *)field(k, c) = !strcmp(v, "yes");
	return 0;
}

/* A size that is a power of two, into a uint32_t. */
static int parse_pow2(const struct key *k, const char *v,
		      struct evd_config *c, char *why, size_t len)
{
	uint64_t n;
	int err;

	err = parse_number(v, true, &n, why, len);
	if (!err)
		err = check_range(k, n, true, why, len);
	if (err)
		return err;
	if (n & (n - 1))
		return fail(why, len, "not a power of two");
	*(uint32_t *)field(k, c) = (uint32_t)n;
	return 0;
}

/*
 * Calls @fn for each entry of a list separated by commas and/or spaces;
 * stops at its first error.
 */
static int for_each_entry(const char *v, char *why, size_t len,
			  int (*fn)(const char *tok, void *arg, char *why,
				    size_t len),
			  void *arg)
{
	char tok[CONFIG_PATH_MAX];

	while (*v) {
		size_t tl = strcspn(v, ", \t");
		int err;

		if (tl == 0) {
			v++;
			continue;
		}
		if (tl >= sizeof(tok))
			return fail(why, len, "entry too long");
		memcpy(tok, v, tl);
		tok[tl] = '\0';
		v += tl;
		err = fn(tok, arg, why, len);
		if (err)
			return err;
	}
	return 0;
}

static const char *const capture_names[] = EVRING_BPF_CAPTURE_NAMES;

struct ids_acc {
	struct config_bpf_ids ids;
};

/* One capture name, appended to the ids unless already there. */
static int add_capture(const char *tok, void *arg, char *why, size_t len)
{
	struct ids_acc *a = arg;
	unsigned int i;

	for (i = 0; i < EVRING_BPF_NR_CAPTURES; i++)
		if (!strcmp(tok, capture_names[i]))
			break;
	if (i == EVRING_BPF_NR_CAPTURES)
		return fail(why, len,
			    "unknown capture '%s' (expected exec, exit, connect, accept or open)",
			    tok);
	for (unsigned int j = 0; j < a->ids.n; j++)
		if (a->ids.id[j] == i)
			return 0;
	a->ids.id[a->ids.n++] = i;
	return 0;
}

/* Capture names, into a mask (bpf.captures). */
static int parse_captures(const struct key *k, const char *v,
			  struct evd_config *c, char *why, size_t len)
{
	struct ids_acc a = { 0 };
	uint32_t mask = 0;
	int err;

	err = for_each_entry(v, why, len, add_capture, &a);
	if (err)
		return err;
	for (unsigned int i = 0; i < a.ids.n; i++)
		mask |= 1u << a.ids.id[i];
	*(uint32_t *)field(k, c) = mask;
	return 0;
}

/* Capture names, in order (bpf.shed). */
static int parse_capture_list(const struct key *k, const char *v,
			      struct evd_config *c, char *why, size_t len)
{
	struct ids_acc a = { 0 };
	int err;

	err = for_each_entry(v, why, len, add_capture, &a);
	if (!err)
		*(struct config_bpf_ids *)field(k, c) = a.ids;
	return err;
}

struct paths_acc {
	struct config_bpf_paths paths;
	size_t max_len;
};

static int add_path(const char *tok, void *arg, char *why, size_t len)
{
	struct paths_acc *a = arg;
	size_t n = strlen(tok);

	if (tok[0] != '/')
		return fail(why, len, "'%s' is not an absolute path", tok);
	if (n > a->max_len)
		return fail(why, len, "'%s' is longer than %zu characters",
			    tok, a->max_len);
	for (unsigned int i = 0; i < a->paths.n; i++)
		if (!strcmp(a->paths.path[i], tok))
			return 0;
	if (a->paths.n == CONFIG_BPF_LIST_MAX)
		return fail(why, len, "too many entries (max %d)",
			    CONFIG_BPF_LIST_MAX);
	memcpy(a->paths.path[a->paths.n++], tok, n + 1);
	return 0;
}

/* Absolute paths of at most k->max characters each (bpf.open_prefixes...). */
static int parse_path_list(const struct key *k, const char *v,
			   struct evd_config *c, char *why, size_t len)
{
	struct paths_acc *a = calloc(1, sizeof(*a));
	int err;

	if (!a)
		return fail(why, len, "out of memory");
	a->max_len = k->max;
	err = for_each_entry(v, why, len, add_path, a);
	if (!err)
		*(struct config_bpf_paths *)field(k, c) = a->paths;
	free(a);
	return err;
}

/* uids or user names, in order, duplicates folded (bpf.uids). */
static int parse_id_list(const struct key *k, const char *v,
			 struct evd_config *c, char *why, size_t len)
{
	struct config_bpf_ids ids = { 0 };
	int err;

	err = parse_ids(v, false, ids.id, &ids.n, why, len);
	if (!err)
		*(struct config_bpf_ids *)field(k, c) = ids;
	return err;
}

static int parse_mode(const struct key *k, const char *v,
		      struct evd_config *c, char *why, size_t len)
{
	if (!strcmp(v, "replicate"))
		c->ship_mode = CONFIG_SHIP_REPLICATE;
	else if (!strcmp(v, "failover"))
		c->ship_mode = CONFIG_SHIP_FAILOVER;
	else
		return fail(why, len, "expected 'replicate' or 'failover'");
	return 0;
}

/* A string field that passed its check, zero-padded (compared bytewise). */
static void set_string(const struct key *k, struct evd_config *c,
		       const char *v)
{
	memset(field(k, c), 0, k->size);
	memcpy(field(k, c), v, strlen(v));
}

/* [A-Za-z0-9_-], 1..k->size - 1 (region.stream). */
static int parse_name(const struct key *k, const char *v,
		      struct evd_config *c, char *why, size_t len)
{
	int err = config_check_name(v, k->size - 1, why, len);

	if (!err)
		set_string(k, c, v);
	return err;
}

static int parse_subject(const struct key *k, const char *v,
			 struct evd_config *c, char *why, size_t len)
{
	int err = config_check_subject_prefix(v, why, len);

	if (!err)
		set_string(k, c, v);
	return err;
}

static int parse_urls(const struct key *k, const char *v,
		      struct evd_config *c, char *why, size_t len)
{
	return config_parse_urls(v, field(k, c), k->size, why, len);
}

/* HOST:PORT for a listening socket, or "" (off). */
static int parse_listen(const struct key *k, const char *v,
			struct evd_config *c, char *why, size_t len)
{
	int err = 0;

	if (strlen(v) >= k->size)
		return fail(why, len, "longer than %zu characters",
			    k->size - 1);
	if (*v)
		err = config_listen_addr(v, NULL, NULL, why, len);
	if (!err)
		set_string(k, c, v);
	return err;
}

/* --- the keys --------------------------------------------------------- */

#define KEY(sec, nm, fn, f, how) \
	.section = sec, .name = nm, .parse = fn, \
	.off = offsetof(struct evd_config, f), \
	.size = sizeof(((struct evd_config *)0)->f), .cmp = how
#define RANGE(lo, hi)	.min = (lo), .max = (hi)
#define SHIP(nm, fn, f, lo, hi) \
	KEY("ship", nm, fn, f, CMP_MEM), RANGE(lo, hi), .live = true
#define RKEY(nm, fn, f, how) \
	.section = "region", .name = nm, .parse = fn, \
	.off = offsetof(struct config_region, f), \
	.size = sizeof(((struct config_region *)0)->f), .cmp = how, \
	.region = true

static const struct key keys[] = {
	{ KEY("host", "id", parse_host_id, host_id, CMP_STR) },
	{ KEY("spool", "path", parse_path, spool_path, CMP_STR) },
	{ KEY("spool", "synchronous", parse_sync, spool_synchronous,
	      CMP_MEM) },
	{ KEY("spool", "max_bytes", parse_size, spool_max_bytes, CMP_MEM),
	  RANGE(CONFIG_SPOOL_MAX_BYTES_MIN, CONFIG_SPOOL_MAX_BYTES_MAX),
	  .live = true },
	{ KEY("drain", "batch_records", parse_u32, drain_batch_records,
	      CMP_MEM),
	  RANGE(CONFIG_BATCH_RECORDS_MIN, CONFIG_BATCH_RECORDS_MAX),
	  .live = true },
	{ KEY("drain", "batch_bytes", parse_size, drain_batch_bytes, CMP_MEM),
	  RANGE(CONFIG_BATCH_BYTES_MIN, CONFIG_BATCH_BYTES_MAX),
	  .live = true },
	{ KEY("drain", "batch_ms", parse_u32, drain_batch_ms, CMP_MEM),
	  RANGE(CONFIG_BATCH_MS_MIN, CONFIG_BATCH_MS_MAX), .live = true },
	{ KEY("sources", "device", parse_path, source_device, CMP_STR),
	  .empty_ok = true },
	{ KEY("sources", "socket", parse_path, source_socket, CMP_STR),
	  .empty_ok = true },
	{ KEY("sources", "socket_max_clients", parse_u32, socket_max_clients,
	      CMP_MEM),
	  RANGE(CONFIG_SOCKET_CLIENTS_MIN, CONFIG_SOCKET_CLIENTS_MAX) },
	{ KEY("sources", "socket_max_event", parse_size, socket_max_event,
	      CMP_MEM),
	  RANGE(CONFIG_SOCKET_EVENT_MIN, CONFIG_SOCKET_EVENT_MAX) },
	{ KEY("control", "socket", parse_path, control_socket, CMP_STR) },
	{ KEY("control", "allow_uid", parse_uids, allow_uid, CMP_UIDS),
	  .live = true },
	{ KEY("control", "allow_gid", parse_gids, allow_gid, CMP_GIDS),
	  .live = true },
	{ KEY("bpf", "enable", parse_bool, bpf_enable, CMP_MEM) },
	{ KEY("bpf", "captures", parse_captures, bpf_captures, CMP_MEM),
	  .live = true },
	{ KEY("bpf", "ring_size", parse_pow2, bpf_ring_size, CMP_MEM),
	  RANGE(CONFIG_BPF_RING_MIN, CONFIG_BPF_RING_MAX) },
	{ KEY("bpf", "pin_path", parse_path, bpf_pin_path, CMP_STR) },
	{ KEY("bpf", "open_prefixes", parse_path_list, bpf_open_prefixes,
	      CMP_MEM),
	  RANGE(1, CONFIG_BPF_PREFIX_MAX), .live = true },
	{ KEY("bpf", "uids", parse_id_list, bpf_uids, CMP_MEM), .live = true },
	{ KEY("bpf", "cgroups", parse_path_list, bpf_cgroups, CMP_MEM),
	  RANGE(1, CONFIG_BPF_CGROUP_MAX - 1), .live = true },
	{ KEY("bpf", "shed", parse_capture_list, bpf_shed, CMP_MEM),
	  .live = true },
	{ KEY("bpf", "shed_fill_pct", parse_u32, bpf_shed_fill_pct, CMP_MEM),
	  RANGE(CONFIG_BPF_SHED_PCT_MIN, CONFIG_BPF_SHED_PCT_MAX),
	  .live = true },
	{ KEY("ship", "mode", parse_mode, ship_mode, CMP_MEM) },
	{ SHIP("max_message", parse_size, ship_max_message,
	       CONFIG_SHIP_MAX_MESSAGE_MIN, CONFIG_SHIP_MAX_MESSAGE_MAX) },
	{ SHIP("publish_timeout_ms", parse_u32, ship_publish_timeout_ms,
	       CONFIG_SHIP_PUBLISH_TIMEOUT_MIN,
	       CONFIG_SHIP_PUBLISH_TIMEOUT_MAX) },
	{ SHIP("backoff_base_ms", parse_u32, ship_backoff_base_ms,
	       CONFIG_SHIP_BACKOFF_BASE_MIN, CONFIG_SHIP_BACKOFF_BASE_MAX) },
	{ SHIP("backoff_cap_ms", parse_u32, ship_backoff_cap_ms,
	       CONFIG_SHIP_BACKOFF_CAP_MIN, CONFIG_SHIP_BACKOFF_CAP_MAX) },
	{ SHIP("retry_rate", parse_u32, ship_retry_rate, 0,
	       CONFIG_SHIP_RETRY_RATE_MAX) },
	{ SHIP("retry_burst", parse_u32, ship_retry_burst,
	       CONFIG_SHIP_RETRY_BURST_MIN, CONFIG_SHIP_RETRY_BURST_MAX) },
	{ SHIP("dead_letter_after", parse_u32, ship_dead_letter_after,
	       CONFIG_SHIP_DEAD_LETTER_MIN, CONFIG_SHIP_DEAD_LETTER_MAX) },
	{ SHIP("breaker_failures", parse_u32, ship_breaker_failures,
	       CONFIG_SHIP_BREAKER_FAILURES_MIN,
	       CONFIG_SHIP_BREAKER_FAILURES_MAX) },
	{ SHIP("breaker_latency_factor", parse_u32,
	       ship_breaker_latency_factor, CONFIG_SHIP_BREAKER_LATENCY_MIN,
	       CONFIG_SHIP_BREAKER_LATENCY_MAX) },
	{ SHIP("breaker_slow_acks", parse_u32, ship_breaker_slow_acks,
	       CONFIG_SHIP_BREAKER_SLOW_MIN, CONFIG_SHIP_BREAKER_SLOW_MAX) },
	{ SHIP("breaker_open_ms", parse_u32, ship_breaker_open_ms,
	       CONFIG_SHIP_BREAKER_OPEN_MIN, CONFIG_SHIP_BREAKER_OPEN_MAX) },
	{ SHIP("breaker_probes", parse_u32, ship_breaker_probes,
	       CONFIG_SHIP_BREAKER_PROBES_MIN,
	       CONFIG_SHIP_BREAKER_PROBES_MAX) },
	{ SHIP("window_min", parse_u32, ship_window_min,
	       CONFIG_SHIP_WINDOW_MIN, CONFIG_SHIP_WINDOW_MAX) },
	{ SHIP("window_max", parse_u32, ship_window_max,
	       CONFIG_SHIP_WINDOW_MIN, CONFIG_SHIP_WINDOW_MAX) },
	{ SHIP("rate_limit", parse_u32, ship_rate_limit, 0,
	       CONFIG_SHIP_RATE_LIMIT_MAX) },
	{ SHIP("lag_limit_s", parse_u32, ship_lag_limit_s, 0,
	       CONFIG_SHIP_LAG_LIMIT_MAX) },
	{ SHIP("failback_hold_ms", parse_u32, ship_failback_hold_ms, 0,
	       CONFIG_SHIP_FAILBACK_HOLD_MAX) },
	{ KEY("ship", "metrics_listen", parse_listen, ship_metrics_listen,
	      CMP_STR) },
	/* [region NAME]: fixed while running */
	{ RKEY("urls", parse_urls, urls, CMP_STR) },
	{ RKEY("stream", parse_name, stream, CMP_STR) },
	{ RKEY("subject_prefix", parse_subject, subject_prefix, CMP_STR) },
	{ RKEY("replicas", parse_u32, replicas, CMP_MEM),
	  RANGE(CONFIG_REGION_REPLICAS_MIN, CONFIG_REGION_REPLICAS_MAX) },
	{ RKEY("create_stream", parse_bool, create_stream, CMP_MEM) },
	{ RKEY("dupe_window_ms", parse_u32, dupe_window_ms, CMP_MEM),
	  RANGE(CONFIG_REGION_DUPE_WINDOW_MIN,
		CONFIG_REGION_DUPE_WINDOW_MAX) },
	{ RKEY("weight", parse_u32, weight, CMP_MEM),
	  RANGE(0, CONFIG_REGION_WEIGHT_MAX) },
	{ RKEY("creds", parse_path, creds, CMP_STR), .empty_ok = true },
	{ RKEY("tls_ca", parse_path, tls_ca, CMP_STR), .empty_ok = true },
	{ RKEY("tls_cert", parse_path, tls_cert, CMP_STR), .empty_ok = true },
	{ RKEY("tls_key", parse_path, tls_key, CMP_STR), .empty_ok = true },
};

#define NR_KEYS (sizeof(keys) / sizeof(keys[0]))

static const struct key *find_key(const char *section, const char *name)
{
	for (size_t i = 0; i < NR_KEYS; i++)
		if (!strcmp(keys[i].section, section) &&
		    !strcmp(keys[i].name, name))
			return &keys[i];
	return NULL;
}

static bool known_section(const char *section)
{
	for (size_t i = 0; i < NR_KEYS; i++)
		if (!keys[i].region && !strcmp(keys[i].section, section))
			return true;
	return false;
}

/* Region key @k as a key of region @i of struct evd_config. */
static struct key at_region(const struct key *k, unsigned int i)
{
	struct key rk = *k;

	rk.off += offsetof(struct evd_config, region) +
		  i * sizeof(struct config_region);
	return rk;
}

static int find_region(const struct evd_config *c, const char *name)
{
	for (unsigned int i = 0; i < c->nr_regions; i++)
		if (!strcmp(c->region[i].name, name))
			return (int)i;
	return -1;
}

/* A new region @name (checked) with the defaults, at the end; or -ENOSPC. */
static int add_region(struct evd_config *c, const char *name)
{
	struct config_region *r;

	if (c->nr_regions == CONFIG_REGIONS_MAX)
		return -ENOSPC;
	r = &c->region[c->nr_regions++];
	memset(r, 0, sizeof(*r));
	strcpy(r->name, name);
	strcpy(r->stream, "EVRING");
	strcpy(r->subject_prefix, "evring");
	r->replicas = 3;
	r->create_stream = 1;
	r->dupe_window_ms = 120000;
	r->weight = 100;
	return 0;
}

static bool same(const struct key *k, const struct evd_config *a,
		 const struct evd_config *b)
{
	switch (k->cmp) {
	case CMP_STR:
		return !strcmp(cfield(k, a), cfield(k, b));
	case CMP_UIDS:
		return a->nr_allow_uid == b->nr_allow_uid &&
		       !memcmp(a->allow_uid, b->allow_uid,
			       a->nr_allow_uid * sizeof(uid_t));
	case CMP_GIDS:
		return a->nr_allow_gid == b->nr_allow_gid &&
		       !memcmp(a->allow_gid, b->allow_gid,
			       a->nr_allow_gid * sizeof(gid_t));
	case CMP_MEM:
	default:
		return !memcmp(cfield(k, a), cfield(k, b), k->size);
	}
}

/*
 * Checks that involve more than one key, on a config whose keys each
 * passed their own: 0, or -EINVAL with the message in @why.
 */
static int whole_check(const struct evd_config *c, char *why, size_t len)
{
	for (unsigned int i = 0; i < c->nr_regions; i++) {
		const struct config_region *r = &c->region[i];

		if (!r->urls[0])
			return fail(why, len, "region '%s' has no urls",
				    r->name);
		if (!r->tls_cert[0] != !r->tls_key[0])
			return fail(why, len,
				    "region '%s' sets %s without %s (set both or neither)",
				    r->name, r->tls_cert[0] ? "tls_cert" : "tls_key",
				    r->tls_cert[0] ? "tls_key" : "tls_cert");
	}
	if (c->nr_regions && strchr(c->host_id, '.'))
		return fail(why, len,
			    "host.id '%s' cannot contain '.' when regions are configured (it is a NATS subject token)",
			    c->host_id);
	if (c->ship_backoff_base_ms > c->ship_backoff_cap_ms)
		return fail(why, len,
			    "ship.backoff_base_ms (%u) is greater than ship.backoff_cap_ms (%u)",
			    c->ship_backoff_base_ms, c->ship_backoff_cap_ms);
	if (c->ship_window_min > c->ship_window_max)
		return fail(why, len,
			    "ship.window_min (%u) is greater than ship.window_max (%u)",
			    c->ship_window_min, c->ship_window_max);
	return 0;
}

/* --- defaults --------------------------------------------------------- */

/* gethostname(), reduced to the characters a host id may hold. */
static void default_host_id(char *id)
{
	char name[256] = "";
	size_t n = 0;

	if (gethostname(name, sizeof(name) - 1) < 0)
		name[0] = '\0';
	for (size_t i = 0; name[i] && n < CONFIG_HOST_ID_MAX; i++)
		id[n++] = host_id_char(name[i]) ? name[i] : '-';
	id[n] = '\0';
	if (n == 0)
		strcpy(id, "localhost");
}

void config_init(struct evd_config *c)
{
	memset(c, 0, sizeof(*c));
	default_host_id(c->host_id);
	strcpy(c->spool_path, "/var/lib/evring/spool.db");
	c->spool_synchronous = CONFIG_SYNC_FULL;
	c->spool_max_bytes = 1ull << 30;
	c->drain_batch_records = 4096;
	c->drain_batch_bytes = 4ull << 20;
	c->drain_batch_ms = 5;
	strcpy(c->source_device, "/dev/evring");
	strcpy(c->source_socket, "/run/evring/ingest.sock");
	c->socket_max_clients = 256;
	c->socket_max_event = 65536;
	strcpy(c->control_socket, CONFIG_DEFAULT_CONTROL_SOCKET);
	c->allow_uid[c->nr_allow_uid++] = 0;
	if (geteuid() != 0)
		c->allow_uid[c->nr_allow_uid++] = geteuid();
	c->bpf_captures = (1u << EVRING_BPF_NR_CAPTURES) - 1;
	c->bpf_ring_size = 4u << 20;
	strcpy(c->bpf_pin_path, "/sys/fs/bpf/evring");
	c->bpf_open_prefixes.n = 1;
	strcpy(c->bpf_open_prefixes.path[0], "/etc/");
	c->bpf_shed.n = 3;
	c->bpf_shed.id[0] = EVRING_BPF_OPEN;
	c->bpf_shed.id[1] = EVRING_BPF_CONNECT;
	c->bpf_shed.id[2] = EVRING_BPF_ACCEPT;
	c->bpf_shed_fill_pct = 50;
	c->ship_mode = CONFIG_SHIP_REPLICATE;
	c->ship_max_message = 1ull << 20;
	c->ship_publish_timeout_ms = 2000;
	c->ship_backoff_base_ms = 100;
	c->ship_backoff_cap_ms = 10000;
	c->ship_retry_rate = 20;
	c->ship_retry_burst = 40;
	c->ship_dead_letter_after = 5;
	c->ship_breaker_failures = 5;
	c->ship_breaker_latency_factor = 20;
	c->ship_breaker_slow_acks = 5;
	c->ship_breaker_open_ms = 2000;
	c->ship_breaker_probes = 1;
	c->ship_window_min = 1;
	c->ship_window_max = 64;
	c->ship_rate_limit = 0;
	c->ship_lag_limit_s = 0;
	c->ship_failback_hold_ms = 10000;
	strcpy(c->ship_metrics_listen, "127.0.0.1:9464");
}

/* --- the file --------------------------------------------------------- */

struct load {
	struct evd_config cfg;		/* defaults, then the file */
	const char *path;
	FILE *f;
	int lineno;			/* of the line inih is handling */
	int set_on[NR_KEYS];		/* line that set each key, 0: none */
	int region;			/* index of the [region] we are in, -1 */
	int region_line[CONFIG_REGIONS_MAX];	/* of its header */
	int region_set_on[CONFIG_REGIONS_MAX][NR_KEYS];
	bool after_key;			/* inih's prev_name: an indented
					 * line continues that key */
	char *line;			/* getline()'s buffer */
	size_t linecap;
	int err;			/* first error, 0: none */
	char *msg;
	size_t msglen;
};

static void load_fail(struct load *ld, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void load_fail(struct load *ld, int err, const char *fmt, ...)
{
	int n = 0;
	va_list ap;

	if (ld->err)
		return;
	ld->err = err;
	if (ld->msglen)
		n = snprintf(ld->msg, ld->msglen, "%s:%d: ", ld->path,
			     ld->lineno);
	if (n >= 0 && (size_t)n < ld->msglen) {
		va_start(ap, fmt);
		vsnprintf(ld->msg + n, ld->msglen - n, fmt, ap);
		va_end(ap);
	}
}

/* A [region NAME] header: a new region with the defaults. */
static int open_region(struct load *ld, const char *name)
{
	char why[128];
	int i;

	if (config_check_name(name, CONFIG_REGION_NAME_MAX, why,
			      sizeof(why)) < 0) {
		load_fail(ld, -EINVAL, "bad region name '%s': %s", name, why);
		return -EINVAL;
	}
	i = find_region(&ld->cfg, name);
	if (i >= 0) {
		load_fail(ld, -EINVAL,
			  "duplicate region '%s' (first defined on line %d)",
			  name, ld->region_line[i]);
		return -EINVAL;
	}
	if (add_region(&ld->cfg, name) < 0) {
		load_fail(ld, -EINVAL, "too many regions (max %d)",
			  CONFIG_REGIONS_MAX);
		return -EINVAL;
	}
	ld->region = (int)ld->cfg.nr_regions - 1;
	ld->region_line[ld->region] = ld->lineno;
	return 0;
}

/*
 * inih's reader: one whole line per call (so lineno is the line inih is
 * on), refused when it would not fit inih's buffer of @num bytes or holds
 * a NUL byte, and section headers checked against the known sections.
 */
static char *read_line(char *str, int num, void *stream)
{
	struct load *ld = stream;
	const char *p, *end;
	ssize_t n;

	if (ld->err)
		return NULL;
	n = getline(&ld->line, &ld->linecap, ld->f);
	if (n < 0) {
		if (ferror(ld->f))
			load_fail(ld, errno ? -errno : -EIO, "read error: %s",
				  strerror(errno ? errno : EIO));
		return NULL;
	}
	ld->lineno++;
	if (n > num - 1) {
		load_fail(ld, -EINVAL, "line too long (max %d characters)",
			  num - 2);
		return NULL;
	}
	if (memchr(ld->line, '\0', n)) {
		load_fail(ld, -EINVAL, "NUL byte in line");
		return NULL;
	}
	for (p = ld->line; *p == ' ' || *p == '\t'; p++)
		;
	/* As inih sees it: indented after a key, a line continues the key. */
	end = *p == '[' && !(ld->after_key && p > ld->line) ?
		      strchr(p, ']') : NULL;
	if (end) {
		char name[256];
		size_t len = end - p - 1;

		snprintf(name, sizeof(name), "%.*s", (int)len, p + 1);
		ld->after_key = false;
		ld->region = -1;
		if (!strcmp(name, "region") || !strncmp(name, "region ", 7)) {
			if (open_region(ld, name + 6 + strspn(name + 6, " \t")))
				return NULL;
		} else if (!known_section(name)) {
			load_fail(ld, -EINVAL, "unknown section [%s]", name);
			return NULL;
		}
	}
	memcpy(str, ld->line, n + 1);
	return str;
}

static int on_key(void *user, const char *section, const char *name,
		  const char *value)
{
	struct load *ld = user;
	char why[256], sect[CONFIG_REGION_NAME_MAX + 8];
	char dotted[CONFIG_REGION_NAME_MAX + 8];
	const struct key *k;
	struct key rk;
	int *set_on;

	ld->after_key = true;
	if (!section[0]) {
		load_fail(ld, -EINVAL, "key '%s' outside a [section]", name);
		return 0;
	}
	if (ld->region >= 0) {	/* inih's section may be cut short */
		const char *rname = ld->cfg.region[ld->region].name;

		snprintf(sect, sizeof(sect), "region %s", rname);
		snprintf(dotted, sizeof(dotted), "region.%s", rname);
		section = "region";
	} else {
		snprintf(sect, sizeof(sect), "%s", section);
		snprintf(dotted, sizeof(dotted), "%s", section);
	}
	k = find_key(section, name);
	if (!k) {
		load_fail(ld, -EINVAL, "unknown key '%s' in [%s]", name, sect);
		return 0;
	}
	set_on = k->region ? &ld->region_set_on[ld->region][k - keys] :
			     &ld->set_on[k - keys];
	if (*set_on) {
		load_fail(ld, -EINVAL,
			  "duplicate key '%s' in [%s] (first set on line %d)",
			  name, sect, *set_on);
		return 0;
	}
	*set_on = ld->lineno;
	rk = k->region ? at_region(k, (unsigned int)ld->region) : *k;
	if (rk.parse(&rk, value, &ld->cfg, why, sizeof(why)) < 0) {
		load_fail(ld, -EINVAL, "bad value '%s' for %s.%s: %s", value,
			  dotted, name, why);
		return 0;
	}
	return 1;
}

int config_load(struct evd_config *c, const char *path, char *err,
		size_t errlen)
{
	struct load *ld;
	char why[256];
	struct stat st;
	int ret;

	ld = calloc(1, sizeof(*ld));
	if (!ld)
		return -ENOMEM;
	config_init(&ld->cfg);
	ld->region = -1;
	ld->path = path;
	ld->msg = err;
	ld->msglen = errlen;
	if (!path)
		goto done;
	ld->f = fopen(path, "re");
	if (!ld->f || (fstat(fileno(ld->f), &st) == 0 && S_ISDIR(st.st_mode))) {
		ret = ld->f ? -EISDIR : -errno;
		snprintf(err, errlen, "cannot open '%s': %s", path,
			 strerror(-ret));
		goto out;
	}
	ret = ini_parse_stream(read_line, ld, on_key, ld);
	if (!ld->err && ret > 0) {
		ld->lineno = ret;
		load_fail(ld, -EINVAL,
			  "syntax error (expected 'key = value' or '[section]')");
	} else if (!ld->err && ret < 0) {
		load_fail(ld, -ENOMEM, "out of memory");
	}
	ret = ld->err;
	if (ret)
		goto out;
	ret = whole_check(&ld->cfg, why, sizeof(why));
	if (ret) {
		snprintf(err, errlen, "%s: %s", path, why);
		goto out;
	}
done:
	*c = ld->cfg;
	ret = 0;
out:
	if (ld->f)
		fclose(ld->f);
	free(ld->line);
	free(ld);
	return ret;
}

/*
 * "region.NAME.key" on @c (NAME checked, the region added when new); *rk
 * points at the key.  -EINVAL with err written otherwise.
 */
static int set_region_key(struct evd_config *c, const char *dotted_key,
			  struct key *rk, char *err, size_t errlen)
{
	const char *name = dotted_key + 7, *dot = strrchr(dotted_key, '.');
	char rname[CONFIG_REGION_NAME_MAX + 2], why[128];
	const struct key *k;
	int i;

	k = dot >= name ? find_key("region", dot + 1) : NULL;
	if (!k) {
		snprintf(err, errlen, "--set: unknown key '%s'", dotted_key);
		return -EINVAL;
	}
	/* Cut at 65 characters, a longer name still fails the check. */
	snprintf(rname, sizeof(rname), "%.*s", (int)(dot - name), name);
	if (config_check_name(rname, CONFIG_REGION_NAME_MAX, why,
			      sizeof(why)) < 0) {
		snprintf(err, errlen, "--set: bad region name '%.*s': %s",
			 (int)(dot - name), name, why);
		return -EINVAL;
	}
	i = find_region(c, rname);
	if (i < 0) {
		if (add_region(c, rname) < 0) {
			snprintf(err, errlen, "--set: too many regions (max %d)",
				 CONFIG_REGIONS_MAX);
			return -EINVAL;
		}
		i = (int)c->nr_regions - 1;
	}
	*rk = at_region(k, (unsigned int)i);
	return 0;
}

int config_set(struct evd_config *c, const char *dotted_key,
	       const char *value, char *err, size_t errlen)
{
	const char *dot = strchr(dotted_key, '.');
	char section[64], why[256];
	const struct key *k = NULL;
	struct evd_config *tmp;
	struct key rk;
	int ret;

	if (dot && (size_t)(dot - dotted_key) < sizeof(section)) {
		snprintf(section, sizeof(section), "%.*s",
			 (int)(dot - dotted_key), dotted_key);
		k = find_key(section, dot + 1);
		if (k && k->region)	/* "region.urls": no region named */
			k = NULL;
	}
	if (!k && strncmp(dotted_key, "region.", 7)) {
		snprintf(err, errlen, "--set: unknown key '%s'", dotted_key);
		return -EINVAL;
	}
	tmp = malloc(sizeof(*tmp));
	if (!tmp)
		return -ENOMEM;
	*tmp = *c;
	if (k) {
		rk = *k;
		snprintf(section, sizeof(section), "%s", k->section);
	} else {
		ret = set_region_key(tmp, dotted_key, &rk, err, errlen);
		if (ret < 0)
			goto out;
		snprintf(section, sizeof(section), "%.*s",
			 (int)(strrchr(dotted_key, '.') - dotted_key),
			 dotted_key);
	}
	ret = rk.parse(&rk, value, tmp, why, sizeof(why));
	if (ret < 0) {
		snprintf(err, errlen, "--set: bad value '%s' for %s.%s: %s",
			 value, section, rk.name, why);
		goto out;
	}
	ret = whole_check(tmp, why, sizeof(why));
	if (ret < 0) {
		snprintf(err, errlen, "--set: %s", why);
		goto out;
	}
	*c = *tmp;
out:
	free(tmp);
	return ret;
}

/* --- reload ----------------------------------------------------------- */

/*
 * Calls @fn with the name of each difference in the [region] sections
 * between @a and @b: "region.NAME" for a region added, removed or moved,
 * "region.NAME.key" for a key of one in both; stops at fn's first nonzero
 * return, which is returned.
 */
static int region_diffs(const struct evd_config *a, const struct evd_config *b,
			int (*fn)(const char *name, void *arg), void *arg)
{
	const char *ca[CONFIG_REGIONS_MAX], *cb[CONFIG_REGIONS_MAX];
	unsigned int na = 0, nb = 0;
	char name[CONFIG_REGION_NAME_MAX + 64];
	int ret;

	for (unsigned int i = 0; i < a->nr_regions; i++) {
		if (find_region(b, a->region[i].name) >= 0) {
			ca[na++] = a->region[i].name;
			continue;
		}
		snprintf(name, sizeof(name), "region.%s", a->region[i].name);
		ret = fn(name, arg);
		if (ret)
			return ret;
	}
	for (unsigned int i = 0; i < b->nr_regions; i++) {
		if (find_region(a, b->region[i].name) >= 0) {
			cb[nb++] = b->region[i].name;
			continue;
		}
		snprintf(name, sizeof(name), "region.%s", b->region[i].name);
		ret = fn(name, arg);
		if (ret)
			return ret;
	}
	for (unsigned int j = 0; j < nb; j++) {	/* na == nb */
		if (!strcmp(ca[j], cb[j]))
			continue;
		snprintf(name, sizeof(name), "region.%s", cb[j]);
		ret = fn(name, arg);
		if (ret)
			return ret;
	}
	for (unsigned int i = 0; i < b->nr_regions; i++) {
		int o = find_region(a, b->region[i].name);

		if (o < 0)
			continue;
		for (size_t x = 0; x < NR_KEYS; x++) {
			struct key ka, kb;

			if (!keys[x].region)
				continue;
			ka = at_region(&keys[x], (unsigned int)o);
			kb = at_region(&keys[x], i);
			if (ka.cmp == CMP_STR ?
				    !strcmp(cfield(&ka, a), cfield(&kb, b)) :
				    !memcmp(cfield(&ka, a), cfield(&kb, b),
					    ka.size))
				continue;
			snprintf(name, sizeof(name), "region.%s.%s",
				 b->region[i].name, keys[x].name);
			ret = fn(name, arg);
			if (ret)
				return ret;
		}
	}
	return 0;
}

static void fixed_changed(char *err, size_t errlen, const char *name)
{
	snprintf(err, errlen,
		 "%s cannot change while running (restart evringd to apply it)",
		 name);
}

struct diff_err {
	char *err;
	size_t len;
};

static int first_region_diff(const char *name, void *arg)
{
	struct diff_err *d = arg;

	fixed_changed(d->err, d->len, name);
	return -EBUSY;
}

int config_reload_diff(const struct evd_config *old,
		       const struct evd_config *new, char *err, size_t errlen)
{
	struct diff_err d = { err, errlen };
	char name[64];

	for (size_t i = 0; i < NR_KEYS; i++) {
		if (keys[i].region || keys[i].live ||
		    same(&keys[i], old, new))
			continue;
		snprintf(name, sizeof(name), "%s.%s", keys[i].section,
			 keys[i].name);
		fixed_changed(err, errlen, name);
		return -EBUSY;
	}
	return region_diffs(old, new, first_region_diff, &d);
}

struct changed {
	char *buf;
	size_t len, used;
	int n;
};

static int add_changed(const char *name, void *arg)
{
	struct changed *ch = arg;
	int w;

	if (ch->used < ch->len) {
		w = snprintf(ch->buf + ch->used, ch->len - ch->used, "%s%s",
			     ch->n ? " " : "", name);
		ch->used += w > 0 ? (size_t)w : 0;
	}
	ch->n++;
	return 0;
}

int config_changed_keys(const struct evd_config *old,
			const struct evd_config *new, char *buf, size_t len)
{
	struct changed ch = { buf, len, 0, 0 };
	char name[64];

	if (len)
		buf[0] = '\0';
	for (size_t i = 0; i < NR_KEYS; i++) {
		if (keys[i].region || same(&keys[i], old, new))
			continue;
		snprintf(name, sizeof(name), "%s.%s", keys[i].section,
			 keys[i].name);
		add_changed(name, &ch);
	}
	region_diffs(old, new, add_changed, &ch);
	return ch.n;
}

int config_allows(const struct evd_config *c, uid_t uid, gid_t gid)
{
	for (unsigned int i = 0; i < c->nr_allow_uid; i++)
		if (c->allow_uid[i] == uid)
			return 1;
	for (unsigned int i = 0; i < c->nr_allow_gid; i++)
		if (c->allow_gid[i] == gid)
			return 1;
	return 0;
}

const char *config_sync_name(enum config_sync s)
{
	return s == CONFIG_SYNC_NORMAL ? "normal" : "full";
}
