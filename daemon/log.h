/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * log: evringd's messages, one line each on stderr (the journal under
 * systemd), with a syslog priority prefix sd-journal understands.  Only the
 * daemon's top-level modules log; helpers return errors.
 */
#ifndef EVRINGD_LOG_H
#define EVRINGD_LOG_H

__attribute__((format(printf, 2, 3)))
void log_at(int priority, const char *fmt, ...);

#define log_error(...)	log_at(3, __VA_ARGS__)
#define log_warn(...)	log_at(4, __VA_ARGS__)
#define log_info(...)	log_at(6, __VA_ARGS__)

#endif /* EVRINGD_LOG_H */
