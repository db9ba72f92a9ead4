// SPDX-License-Identifier: GPL-2.0-only
/* log: see log.h. */
#include <stdarg.h>
#include <stdio.h>
#include "log.h"

void log_at(int priority, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One write per line, so lines from a crash loop never interleave. */
	fprintf(stderr, "<%d>evringd: %s\n", priority, line);
}
