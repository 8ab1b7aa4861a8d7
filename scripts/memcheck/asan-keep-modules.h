/*
 * Force-included into every nginx source file of the ASan build
 * (scripts/memcheck/build-asan.sh; not into configure's feature tests).
 *
 * nginx dlclose()s its dynamic modules when a cycle's pool is destroyed,
 * which the master does at exit, just before LeakSanitizer's report: the
 * frames of an unloaded module then print as "<unknown module>" and cannot
 * be attributed. With dlclose() a no-op the modules stay mapped until the
 * process ends, so their frames keep their names. (Memory that a module's
 * statics own is then still reachable at exit and not reported; valgrind,
 * run with --keep-debuginfo=yes, does report it.)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#define _FILE_OFFSET_BITS  64
#include <dlfcn.h>
#define dlclose(handle)  ((void) (handle), 0)
