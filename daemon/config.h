/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * config: evringd's configuration, one INI file (parsed by libinih) plus
 * command-line overrides.  docs/OPERATING.md lists every key; so does
 * daemon/evringd.conf.example.
 *
 *	struct evd_config c;
 *	if (config_load(&c, path, err, sizeof(err)) < 0)	defaults + file
 *		die("%s", err);
 *	for each --set KEY=VALUE:
 *		if (config_set(&c, key, value, err, sizeof(err)) < 0)
 *			die("%s", err);
 *
 * SIGHUP: load the file again into a fresh struct, apply the same --set
 * overrides, then config_reload_diff(&running, &fresh): 0 means every
 * change is to a live key (CONFIG_LIVE_KEYS) and the fresh config may be
 * adopted; otherwise keep running on the old one and log err.
 *
 * Guarantees:
 *  - A struct evd_config is plain data (no pointers): copy it by assignment,
 *    nothing to free.
 *  - Every value is validated: numbers by checked strtoull() within the
 *    bounds below, sizes with K/M/G/T suffixes (powers of 1024), enums by
 *    name, paths absolute and NUL-free, socket paths short enough for
 *    sun_path.  The struct never holds a value these checks reject.
 *  - *c is written only on success; on failure err holds one line,
 *    "FILE:LINE: ..." for file errors:
 *	FILE:LINE: unknown section [x]
 *	FILE:LINE: unknown key 'x' in [section]
 *	FILE:LINE: bad value 'v' for section.key: why
 *	FILE:LINE: duplicate key 'x' in [section] (first set on line N)
 *	FILE:LINE: syntax error (expected 'key = value' or '[section]')
 *	FILE:LINE: line too long (max N characters)
 *    and, from config_set(), the same text without FILE:LINE and with
 *    "--set" in place of the file name (e.g. "--set: unknown key 'x'").
 *  - The module never prints.
 */
#ifndef EVRINGD_CONFIG_H
#define EVRINGD_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CONFIG_DEFAULT_PATH	"/etc/evring/evringd.conf"
#define CONFIG_DEFAULT_CONTROL_SOCKET	"/run/evring/control.sock"

#define CONFIG_HOST_ID_MAX	32	/* [A-Za-z0-9._-], 1..32: a batch header field */
#define CONFIG_PATH_MAX		4096	/* including the NUL */
#define CONFIG_SUN_PATH_MAX	108	/* sizeof(sun_path), with the NUL */
#define CONFIG_ALLOW_MAX	32	/* entries in allow_uid / allow_gid */
#define CONFIG_BPF_LIST_MAX	8	/* entries in bpf.open_prefixes, bpf.cgroups */
#define CONFIG_BPF_PREFIX_MAX	124	/* bytes of one bpf.open_prefixes entry */
#define CONFIG_BPF_CGROUP_MAX	256	/* bytes of one bpf.cgroups entry, with the NUL */
#define CONFIG_BPF_CAPTURES_MAX	8	/* capture ids are 0..7 */

/* Bounds, inclusive. */
#define CONFIG_SPOOL_MAX_BYTES_MIN	(1ull << 20)		/* 1M */
#define CONFIG_SPOOL_MAX_BYTES_MAX	(1ull << 50)		/* 1P */
#define CONFIG_BATCH_RECORDS_MIN	1u
#define CONFIG_BATCH_RECORDS_MAX	(1u << 20)
#define CONFIG_BATCH_BYTES_MIN		(4ull << 10)		/* 4K */
#define CONFIG_BATCH_BYTES_MAX		(256ull << 20)		/* 256M */
#define CONFIG_BATCH_MS_MIN		0u	/* 0: commit as soon as drained */
#define CONFIG_BATCH_MS_MAX		60000u
#define CONFIG_SOCKET_CLIENTS_MIN	1u
#define CONFIG_SOCKET_CLIENTS_MAX	4096u
#define CONFIG_SOCKET_EVENT_MIN		1u
#define CONFIG_SOCKET_EVENT_MAX		(16u << 20)		/* 16M */
#define CONFIG_BPF_RING_MIN		(4u << 10)	/* 4K, a power of two */
#define CONFIG_BPF_RING_MAX		(1u << 30)	/* 1G */
#define CONFIG_BPF_SHED_PCT_MIN		1u
#define CONFIG_BPF_SHED_PCT_MAX		100u

/* Keys SIGHUP may change in a running daemon; every other key is fixed. */
#define CONFIG_LIVE_KEYS \
	"spool.max_bytes drain.batch_records drain.batch_bytes " \
	"drain.batch_ms control.allow_uid control.allow_gid " \
	"bpf.captures bpf.open_prefixes bpf.uids bpf.cgroups bpf.shed " \
	"bpf.shed_fill_pct"

enum config_sync {
	CONFIG_SYNC_FULL,	/* PRAGMA synchronous=FULL: survives power loss */
	CONFIG_SYNC_NORMAL,	/* =NORMAL: WAL, survives a daemon crash only */
};

/* A list of paths; entries past n are all zero (so lists compare bytewise). */
struct config_bpf_paths {
	unsigned int n;
	char path[CONFIG_BPF_LIST_MAX][CONFIG_BPF_CGROUP_MAX];
};

/* A list of numeric ids, in order; entries past n are zero. */
struct config_bpf_ids {
	unsigned int n;
	uint32_t id[CONFIG_ALLOW_MAX];
};

struct evd_config {
	/* [host] */
	char host_id[CONFIG_HOST_ID_MAX + 1];	/* default: gethostname() */

	/* [spool] */
	char spool_path[CONFIG_PATH_MAX];	/* /var/lib/evring/spool.db */
	enum config_sync spool_synchronous;	/* full */
	uint64_t spool_max_bytes;		/* 1G; live */

	/* [drain]: the group-commit bounds, whichever is reached first */
	uint32_t drain_batch_records;		/* 4096; live */
	uint64_t drain_batch_bytes;		/* 4M; live */
	uint32_t drain_batch_ms;		/* 5; live */

	/* [sources]; an empty path disables that source */
	char source_device[CONFIG_PATH_MAX];	/* /dev/evring */
	char source_socket[CONFIG_SUN_PATH_MAX];/* /run/evring/ingest.sock */
	uint32_t socket_max_clients;		/* 256 */
	uint32_t socket_max_event;		/* 65536 bytes */

	/* [control] */
	char control_socket[CONFIG_SUN_PATH_MAX];/* /run/evring/control.sock */
	uid_t allow_uid[CONFIG_ALLOW_MAX];	/* 0 and geteuid(); live */
	unsigned int nr_allow_uid;		/* 0: nobody by uid */
	gid_t allow_gid[CONFIG_ALLOW_MAX];	/* none; live */
	unsigned int nr_allow_gid;

	/* [bpf]: kernel events captured by eBPF programs (docs/BPF.md) */
	uint32_t bpf_enable;			/* 0 ("no") */
	uint32_t bpf_captures;			/* bit per capture id: all; live */
	uint32_t bpf_ring_size;			/* 4M, a power of two */
	char bpf_pin_path[CONFIG_PATH_MAX];	/* /sys/fs/bpf/evring */
	struct config_bpf_paths bpf_open_prefixes;	/* /etc/; live */
	struct config_bpf_ids bpf_uids;		/* none: every uid; live */
	struct config_bpf_paths bpf_cgroups;	/* none: every cgroup; live */
	struct config_bpf_ids bpf_shed;		/* capture ids, shed first first:
						 * open connect accept; live */
	uint32_t bpf_shed_fill_pct;		/* 50; live */
};

/* Fill *c with the defaults: what evringd runs on with no file. */
void config_init(struct evd_config *c);

/*
 * *c = defaults overlaid with the file at @path (NULL: defaults only).
 * -ENOENT/-EACCES/...: the file cannot be opened ("cannot open 'p': why");
 * -EINVAL: anything in it is wrong (see the head comment).
 */
int config_load(struct evd_config *c, const char *path, char *err,
		size_t errlen);

/*
 * One override, "section.key" = value, validated like the file; list keys
 * (allow_uid, allow_gid) are replaced, not appended.  -EINVAL otherwise,
 * *c unchanged.
 */
int config_set(struct evd_config *c, const char *dotted_key,
	       const char *value, char *err, size_t errlen);

/*
 * 0 when every key that differs between @old and @new is live, so @new may
 * replace @old in a running daemon.  -EBUSY naming the first fixed key
 * that differs: "spool.path cannot change while running (restart evringd
 * to apply it)".
 */
int config_reload_diff(const struct evd_config *old,
		       const struct evd_config *new, char *err, size_t errlen);

/*
 * The keys that differ between @old and @new, space-separated, into @buf
 * (for logging what a reload changed); returns how many differ.
 */
int config_changed_keys(const struct evd_config *old,
			const struct evd_config *new, char *buf, size_t len);

/* Is @uid (or @gid) allowed on the control socket by @c? */
int config_allows(const struct evd_config *c, uid_t uid, gid_t gid);

/* "full" / "normal". */
const char *config_sync_name(enum config_sync s);

#endif /* EVRINGD_CONFIG_H */
