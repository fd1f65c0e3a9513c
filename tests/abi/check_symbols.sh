#!/bin/sh
# The exported symbols of lib/libvitq.so are exactly tests/abi/exported_symbols.txt, the soname
# carries the major version, and every global the static archive defines starts with "vitq"
# (hidden visibility does nothing inside a .a, so firmware links would clash on plain names).
fail=0
got=$(mktemp)
nm -D --defined-only lib/libvitq.so | awk '{print $3}' | sort >"$got"
if diff -u tests/abi/exported_symbols.txt "$got"; then
    echo "PASS exported symbols match tests/abi/exported_symbols.txt"
else
    echo "FAIL exported symbols differ from tests/abi/exported_symbols.txt (diff above)"
    fail=1
fi
major=$(sed -n 's/^#define VITQ_VERSION_MAJOR \([0-9]*\)/\1/p' include/vitq.h)
if readelf -d lib/libvitq.so | grep -q "SONAME.*\[libvitq.so.$major\]"; then
    echo "PASS soname is libvitq.so.$major"
else
    echo "FAIL soname is not libvitq.so.$major"
    fail=1
fi
bad=$(nm -g --defined-only lib/libvitq.a | awk 'NF == 3 {print $3}' | grep -v '^vitq' | sort -u)
if [ -z "$bad" ]; then
    echo "PASS every global symbol of libvitq.a starts with vitq"
else
    echo "FAIL globals of libvitq.a without the vitq prefix:"
    echo "$bad"
    fail=1
fi
# Every exported symbol is documented in the header and in docs/api.md.
missing=""
for s in $(cat tests/abi/exported_symbols.txt); do
    grep -q "\\b$s\\b" include/vitq.h || missing="$missing $s(header)"
    grep -q "\\b$s\\b" docs/api.md || missing="$missing $s(docs/api.md)"
done
if [ -z "$missing" ]; then
    echo "PASS every exported symbol is declared in include/vitq.h and documented in docs/api.md"
else
    echo "FAIL undocumented symbols:$missing"
    fail=1
fi
rm -f "$got"
exit $fail
