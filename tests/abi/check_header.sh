#!/bin/sh
# include/vitq.h stands alone: it compiles by itself as strict C11 and as C++.
dir=$(mktemp -d)
printf '#include "vitq.h"\nint main(void) { return vitq_version() == VITQ_VERSION_NUMBER ? 0 : 1; }\n' >"$dir/c.c"
fail=0
if ${CC:-cc} -std=c11 -pedantic -Wall -Wextra -Werror -Iinclude -c "$dir/c.c" -o "$dir/c.o"; then
    echo "PASS vitq.h compiles alone as C11 -pedantic"
else
    echo "FAIL vitq.h does not compile alone as C11"
    fail=1
fi
cp "$dir/c.c" "$dir/cpp.cpp"
if command -v ${CXX:-c++} >/dev/null 2>&1; then
    if ${CXX:-c++} -std=c++11 -pedantic -Wall -Wextra -Werror -Iinclude -c "$dir/cpp.cpp" -o "$dir/cpp.o"; then
        echo "PASS vitq.h compiles as C++11"
    else
        echo "FAIL vitq.h does not compile as C++11"
        fail=1
    fi
fi
# The shared library works when linked the normal way, and reports the header's version.
if ${CC:-cc} -Iinclude "$dir/c.c" -Llib -lvitq -o "$dir/linked" && LD_LIBRARY_PATH=lib "$dir/linked"; then
    echo "PASS a program linked with -lvitq runs and sees the header's version"
else
    echo "FAIL linking against lib/libvitq.so"
    fail=1
fi
rm -rf "$dir"
exit $fail
