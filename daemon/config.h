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
 *	FILE:LINE: bad region name 'x': why
 *	FILE:LINE: duplicate region 'a' (first defined on line N)
 *	FILE:LINE: too many regions (max 8)
 *    and, from config_set(), the same text without FILE:LINE and with
 *    "--set" in place of the file name (e.g. "--set: unknown key 'x'").
 *    A region key is named "region.NAME.key" ("bad value 'v' for
 *    region.a.urls: why"; [region a] in the section messages).
 *  - Rules between keys are checked after the whole file, and after each
 *    config_set() (so set region.NAME.urls before a new region's other
 *    keys, and a cap before raising its base), with no line number:
 *	FILE: region 'x' has no urls
 *	FILE: region 'x' sets tls_cert without tls_key (set both or neither)
 *	FILE: host.id 'a.b' cannot contain '.' when regions are configured (it is a NATS subject token)
 *	FILE: ship.backoff_base_ms (200) is greater than ship.backoff_cap_ms (100)
 *	FILE: ship.window_min (8) is greater than ship.window_max (4)
 *  - Regions are kept in file order (then --set order); string fields are
 *    zero-padded, so two configs with the same values compare equal with
 *    memcmp().
 *  - The module never prints.
 */
#ifndef EVRINGD_CONFIG_H
#define EVRINGD_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
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
#define CONFIG_REGIONS_MAX	8	/* [region NAME] sections */
#define CONFIG_REGION_NAME_MAX	64	/* [A-Za-z0-9_-], 1..64 */
#define CONFIG_REGION_URLS_MAX	1024	/* region.urls, bytes */
#define CONFIG_STREAM_MAX	64	/* region.stream, [A-Za-z0-9_-] */
#define CONFIG_SUBJECT_PREFIX_MAX 128	/* region.subject_prefix */
#define CONFIG_LISTEN_MAX	64	/* ship.metrics_listen, with the NUL */

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
#define CONFIG_SHIP_MAX_MESSAGE_MIN	(4ull << 10)		/* 4K */
#define CONFIG_SHIP_MAX_MESSAGE_MAX	(64ull << 20)		/* 64M */
#define CONFIG_SHIP_PUBLISH_TIMEOUT_MIN	100u		/* ms */
#define CONFIG_SHIP_PUBLISH_TIMEOUT_MAX	600000u
#define CONFIG_SHIP_BACKOFF_BASE_MIN	1u		/* ms */
#define CONFIG_SHIP_BACKOFF_BASE_MAX	60000u
#define CONFIG_SHIP_BACKOFF_CAP_MIN	1u		/* ms, and >= base */
#define CONFIG_SHIP_BACKOFF_CAP_MAX	3600000u
#define CONFIG_SHIP_RETRY_RATE_MAX	100000u		/* min 0: unlimited */
#define CONFIG_SHIP_RETRY_BURST_MIN	1u
#define CONFIG_SHIP_RETRY_BURST_MAX	100000u
#define CONFIG_SHIP_DEAD_LETTER_MIN	1u		/* attempts */
#define CONFIG_SHIP_DEAD_LETTER_MAX	1000u
#define CONFIG_SHIP_BREAKER_FAILURES_MIN 1u
#define CONFIG_SHIP_BREAKER_FAILURES_MAX 1000u
#define CONFIG_SHIP_BREAKER_LATENCY_MIN	2u		/* x the normal ack time */
#define CONFIG_SHIP_BREAKER_LATENCY_MAX	1000u
#define CONFIG_SHIP_BREAKER_SLOW_MIN	1u
#define CONFIG_SHIP_BREAKER_SLOW_MAX	1000u
#define CONFIG_SHIP_BREAKER_OPEN_MIN	10u		/* ms */
#define CONFIG_SHIP_BREAKER_OPEN_MAX	600000u
#define CONFIG_SHIP_BREAKER_PROBES_MIN	1u
#define CONFIG_SHIP_BREAKER_PROBES_MAX	64u
#define CONFIG_SHIP_WINDOW_MIN		1u		/* both window keys, */
#define CONFIG_SHIP_WINDOW_MAX		1024u		/* and min <= max */
#define CONFIG_SHIP_RATE_LIMIT_MAX	1000000u	/* min 0: none */
#define CONFIG_SHIP_LAG_LIMIT_MAX	31536000u	/* s; min 0: never */
#define CONFIG_SHIP_FAILBACK_HOLD_MAX	3600000u	/* ms; min 0 */
#define CONFIG_REGION_REPLICAS_MIN	1u
#define CONFIG_REGION_REPLICAS_MAX	5u
#define CONFIG_REGION_DUPE_WINDOW_MIN	1000u		/* ms */
#define CONFIG_REGION_DUPE_WINDOW_MAX	86400000u
#define CONFIG_REGION_WEIGHT_MAX	10000u		/* min 0 */

/* Keys SIGHUP may change in a running daemon; every other key is fixed. */
#define CONFIG_LIVE_KEYS \
	"spool.max_bytes drain.batch_records drain.batch_bytes " \
	"drain.batch_ms control.allow_uid control.allow_gid " \
	"bpf.captures bpf.open_prefixes bpf.uids bpf.cgroups bpf.shed " \
	"bpf.shed_fill_pct ship.max_message ship.publish_timeout_ms " \
	"ship.backoff_base_ms ship.backoff_cap_ms ship.retry_rate " \
	"ship.retry_burst ship.dead_letter_after ship.breaker_failures " \
	"ship.breaker_latency_factor ship.breaker_slow_acks " \
	"ship.breaker_open_ms ship.breaker_probes ship.window_min " \
	"ship.window_max ship.rate_limit ship.lag_limit_s " \
	"ship.failback_hold_ms"

enum config_ship_mode {
	CONFIG_SHIP_REPLICATE,	/* every batch to every region */
	CONFIG_SHIP_FAILOVER,	/* each partition to one region (rendezvous) */
};

/*
 * One [region NAME] section: a NATS JetStream stream batches are shipped
 * to.  Every string is NUL-padded to its full size (regions compare
 * bytewise); regions past nr_regions are all zero.
 */
struct config_region {
	char name[CONFIG_REGION_NAME_MAX + 1];
	char urls[CONFIG_REGION_URLS_MAX + 1];	/* "nats://h:p,tls://h:p" */
	char stream[CONFIG_STREAM_MAX + 1];	/* EVRING */
	char subject_prefix[CONFIG_SUBJECT_PREFIX_MAX + 1];	/* evring */
	uint32_t replicas;			/* 3 */
	uint32_t create_stream;			/* 1 ("yes") */
	uint64_t dupe_window_ms;		/* 120000 */
	uint32_t weight;			/* 100 */
	char creds[CONFIG_PATH_MAX];		/* "": none */
	char tls_ca[CONFIG_PATH_MAX];		/* "": none */
	char tls_cert[CONFIG_PATH_MAX];		/* "", or set with tls_key */
	char tls_key[CONFIG_PATH_MAX];
};

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

	/* [ship]: spooled batches to remote regions (docs/OPERATING.md) */
	enum config_ship_mode ship_mode;	/* replicate */
	uint64_t ship_max_message;		/* 1M: a batch's raw body cap; live */
	uint32_t ship_publish_timeout_ms;	/* 2000; live */
	uint32_t ship_backoff_base_ms;		/* 100; live */
	uint32_t ship_backoff_cap_ms;		/* 10000, >= base; live */
	uint32_t ship_retry_rate;		/* 20/s per region, 0 = unlimited; live */
	uint32_t ship_retry_burst;		/* 40; live */
	uint32_t ship_dead_letter_after;	/* 5 attempts; live */
	uint32_t ship_breaker_failures;		/* 5; live */
	uint32_t ship_breaker_latency_factor;	/* 20; live */
	uint32_t ship_breaker_slow_acks;	/* 5; live */
	uint32_t ship_breaker_open_ms;		/* 2000; live */
	uint32_t ship_breaker_probes;		/* 1; live */
	uint32_t ship_window_min;		/* 1; live */
	uint32_t ship_window_max;		/* 64, >= min; live */
	uint32_t ship_rate_limit;		/* 0 batches/s per region: none; live */
	uint32_t ship_lag_limit_s;		/* 0: never park; live */
	uint32_t ship_failback_hold_ms;		/* 10000; live */
	char ship_metrics_listen[CONFIG_LISTEN_MAX];	/* 127.0.0.1:9464; "" off */

	/* [region NAME] sections, in file order; fixed while running */
	unsigned int nr_regions;
	struct config_region region[CONFIG_REGIONS_MAX];
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
 * (allow_uid, allow_gid) are replaced, not appended.  "region.NAME.key"
 * sets a key of [region NAME], adding the region (with its defaults) when
 * new.  -EINVAL otherwise, *c unchanged.
 */
int config_set(struct evd_config *c, const char *dotted_key,
	       const char *value, char *err, size_t errlen);

/*
 * 0 when every key that differs between @old and @new is live, so @new may
 * replace @old in a running daemon.  -EBUSY naming the first fixed key
 * that differs: "spool.path cannot change while running (restart evringd
 * to apply it)".  Every [region] key is fixed, and so is the list of
 * regions: a region added, removed or moved is named "region.NAME", a key
 * of one "region.NAME.key".
 */
int config_reload_diff(const struct evd_config *old,
		       const struct evd_config *new, char *err, size_t errlen);

/*
 * The keys that differ between @old and @new, space-separated, into @buf
 * (for logging what a reload changed), regions named as by
 * config_reload_diff(); returns how many differ.
 */
int config_changed_keys(const struct evd_config *old,
			const struct evd_config *new, char *buf, size_t len);

/* Is @uid (or @gid) allowed on the control socket by @c? */
int config_allows(const struct evd_config *c, uid_t uid, gid_t gid);

/* "full" / "normal". */
const char *config_sync_name(enum config_sync s);

/* "replicate" / "failover". */
const char *config_ship_mode_name(enum config_ship_mode m);

/*
 * The checks of the shipping values (daemon/config_ship.c), for config.c
 * and for whoever needs the same rule.  Each returns 0, or -EINVAL with
 * why (one lowercase phrase, as in "bad value 'v' for k: why") filled in.
 */

/* 1..@max of [A-Za-z0-9_-]: region names, stream names. */
int config_check_name(const char *v, size_t max, char *why, size_t len);

/* NATS subject tokens of [A-Za-z0-9_-] joined by single dots, 1..128. */
int config_check_subject_prefix(const char *v, char *why, size_t len);

/*
 * Comma-separated "nats://host:port" or "tls://host:port" (host a name, an
 * IPv4 literal or an [IPv6] literal; port 1..65535), spaces around the
 * commas allowed; *out (@outlen bytes, zero-padded) gets the list with
 * single commas and no spaces, "nats://a:4222,tls://b:4222" (jetstream.c
 * splits it for natsOptions_SetServers(): libnats 3.4.1's SetURL() does
 * not connect with a list).
 */
int config_parse_urls(const char *v, char *out, size_t outlen, char *why,
		      size_t len);

/*
 * "A.B.C.D:PORT" or "[V6]:PORT" (literals only: no name is resolved) into
 * a socket address for bind(); @ss and @sslen may be NULL (check only).
 */
int config_listen_addr(const char *v, struct sockaddr_storage *ss,
		       socklen_t *sslen, char *why, size_t len);

#endif /* EVRINGD_CONFIG_H */
