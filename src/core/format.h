/* A small vsnprintf for the freestanding subset (docs/firmware.md), which links no stdio: the error
 * messages of the library's integer code format only integers and strings. */
#ifndef VITQ_CORE_FORMAT_H
#define VITQ_CORE_FORMAT_H

#include <stdarg.h>
#include <stddef.h>

/* As vsnprintf for the conversions d i u x X c s % with the length modifiers hh h l ll z j t, a width
 * and the '-' and '0' flags. A floating-point conversion (e f g a, any case) takes its double and prints
 * '?'; any other conversion prints itself. Writes at most `size` bytes, NUL included (none when size is
 * 0); returns the length the whole text has. */
int vitq_i_vformat(char *buf, size_t size, const char *fmt, va_list ap);

#endif
