/*
 * tools/libspate.c - the one source of the shared library libspate.so: the
 * library is every layer's static archive linked whole (tools/CMakeLists.txt),
 * plus this file's version string. User jobs (`spate run ./my_job.so`) and
 * the installed `spate` binary link it, so that a job and the runner share
 * one copy of the engine.
 */
#include "spate/version.h"

const char *spate_version(void)
{
    return SPATE_VERSION_STRING;
}
