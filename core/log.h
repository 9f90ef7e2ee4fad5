/*
 * core/log.h - one-line log records to stderr.
 *
 * Each line: "<wall time> <level> [shard N] <message>". The shard tag comes
 * from a thread-local set by the shard runtime (sp_log_set_shard); threads
 * that are not shards print "[main]". Lines are written with one write(2)
 * so concurrent shards never interleave within a line. Not for the data
 * path: logging is for operating events (start, stop, stalls, errors).
 */
#ifndef SP_CORE_LOG_H
#define SP_CORE_LOG_H

#ifdef __cplusplus
extern "C" {
#endif

enum sp_log_level { SP_LOG_ERROR, SP_LOG_WARN, SP_LOG_INFO, SP_LOG_DEBUG };

/* Process-wide threshold; records above it are dropped. Default SP_LOG_INFO,
 * or SPATE_LOG_LEVEL=error|warn|info|debug from the environment. */
void sp_log_set_level(enum sp_log_level level);
enum sp_log_level sp_log_level(void);

/* Tags this thread's lines with a shard id (-1 for none). */
void sp_log_set_shard(int shard_id);

void sp_log(enum sp_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define SP_LOG_ERROR(...) sp_log(SP_LOG_ERROR, __VA_ARGS__)
#define SP_LOG_WARN(...) sp_log(SP_LOG_WARN, __VA_ARGS__)
#define SP_LOG_INFO(...) sp_log(SP_LOG_INFO, __VA_ARGS__)
#define SP_LOG_DEBUG(...) sp_log(SP_LOG_DEBUG, __VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif
