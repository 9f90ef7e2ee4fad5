/*
 * core/bytes.h - explicit little-endian encoding of integers, for the
 * on-disk formats (snapshots, checkpoint files, source positions), so that
 * files read the same on every host. The one copy of these helpers.
 */
#ifndef SP_CORE_BYTES_H
#define SP_CORE_BYTES_H

#include <stdint.h>

static inline void sp_put_le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static inline void sp_put_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint32_t sp_get_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t sp_get_le64(const unsigned char *p)
{
    return (uint64_t)sp_get_le32(p) | (uint64_t)sp_get_le32(p + 4) << 32;
}

#endif
