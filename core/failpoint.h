/*
 * core/failpoint.h - named crash points for fault tests (in the spirit of
 * FreeBSD's and TiKV's fail points, reduced to the one action recovery
 * tests need: die at exactly this step).
 *
 * SPATE_FAILPOINT=<name>[@<n>] in the environment makes the process kill
 * itself with SIGKILL the n-th time (default: the first) any thread passes
 * sp_failpoint("<name>"). Unset, a pass costs one predictable branch. The
 * points are listed in docs/internals/checkpoints.md;
 * tests/tools/test_failpoints.cc crashes at each of them and checks that
 * recovery is still exact.
 */
#ifndef SP_CORE_FAILPOINT_H
#define SP_CORE_FAILPOINT_H

#include <stdbool.h>

/* True when SPATE_FAILPOINT names a point (read once). */
bool sp_failpoints_armed(void);
void sp_failpoint_hit(const char *name);

static inline void sp_failpoint(const char *name)
{
    if (__builtin_expect(sp_failpoints_armed(), 0))
        sp_failpoint_hit(name);
}

#endif
