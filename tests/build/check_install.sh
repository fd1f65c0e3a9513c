#!/bin/sh
# `make install PREFIX=... DESTDIR=...` lays out header, both libraries (with soname links) and vitq.pc,
# and a program built only from what was installed links and runs, against the shared and the static
# library alike.
set -e
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=/opt/vitq-test
make --no-print-directory install PREFIX=$prefix DESTDIR="$tmp" >/dev/null
root="$tmp$prefix"
for f in include/vitq.h lib/libvitq.a lib/libvitq.so lib/pkgconfig/vitq.pc; do
    [ -e "$root/$f" ] || { echo "FAIL: $f not installed"; exit 1; }
done
major=$(sed -n 's/^#define VITQ_VERSION_MAJOR \([0-9]*\)/\1/p' include/vitq.h)
[ "$(readlink "$root/lib/libvitq.so")" = "libvitq.so.$major" ] || { echo "FAIL: libvitq.so link"; exit 1; }
ls "$root"/lib/libvitq.so."$major".*.* >/dev/null 2>&1 || { echo "FAIL: no libvitq.so.X.Y.Z"; exit 1; }
grep -q "^libdir=$prefix/lib\$" "$root/lib/pkgconfig/vitq.pc" || { echo "FAIL: vitq.pc libdir"; exit 1; }
# Only the installed header and library: nothing from the source tree.
cc -std=c11 -Wall -Wextra -Werror -I"$root/include" -o "$tmp/classify_shared" examples/classify.c \
    -L"$root/lib" -lvitq
cc -std=c11 -Wall -Wextra -Werror -I"$root/include" -o "$tmp/classify_static" examples/classify.c \
    "$root/lib/libvitq.a" $(sed -n "s/^Libs.private: //p" "$root/lib/pkgconfig/vitq.pc")
model=tests/fixtures/models/odd-vit-hf
a=$(LD_LIBRARY_PATH="$root/lib" "$tmp/classify_shared" $model $model/input_u8.npy 4)
b=$("$tmp/classify_static" $model $model/input_u8.npy 4)
[ -n "$a" ] && [ "$a" = "$b" ] || { echo "FAIL: installed builds disagree or print nothing: '$a' vs '$b'"; exit 1; }
echo "OK: installed tree builds and runs examples/classify.c (shared and static)"
