/*
 * spate/version.h - which Spate a program runs against.
 */
#ifndef SPATE_VERSION_H
#define SPATE_VERSION_H

#ifdef __cplusplus
extern "C" {
#endif

/* "MAJOR.MINOR.PATCH" of the library loaded (libspate). Static storage. */
const char *spate_version(void);

#ifdef __cplusplus
}
#endif
#endif
