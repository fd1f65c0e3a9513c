#!/bin/sh
# `make install PREFIX=... DESTDIR=...` lays out header, both libraries (with soname links), vitq.pc,
# the CLI and its man page, the Python package, and a program built only from what was installed links and
# runs, against the shared and the static library alike; `make uninstall` removes every file again.
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
# Only the installed header and library, found by pkg-config as a user's build finds them (shared, and
# --static for the static library's private dependencies): nothing from the source tree. The .pc file
# names the final prefix; PKG_CONFIG_SYSROOT_DIR puts the DESTDIR in front of its paths.
if ! command -v pkg-config >/dev/null 2>&1; then
    echo "FAIL: pkg-config is not installed (Debian: pkg-config)"
    exit 1
fi
pc() { PKG_CONFIG_PATH="$root/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$tmp" pkg-config "$@" vitq; }
cc -std=c11 -Wall -Wextra -Werror $(pc --cflags) -o "$tmp/classify_shared" examples/classify.c $(pc --libs)
cc -std=c11 -Wall -Wextra -Werror $(pc --cflags) -o "$tmp/classify_static" examples/classify.c \
    "$root/lib/libvitq.a" $(pc --static --libs | sed 's/-lvitq\b//')
model=tests/fixtures/models/odd-vit-hf
a=$(LD_LIBRARY_PATH="$root/lib" "$tmp/classify_shared" $model $model/input_u8.npy 4)
b=$("$tmp/classify_static" $model $model/input_u8.npy 4)
[ -n "$a" ] && [ "$a" = "$b" ] || { echo "FAIL: installed builds disagree or print nothing: '$a' vs '$b'"; exit 1; }
# C++17 through the C header (examples/classify.cpp's RAII wrappers), pedantic and warning-free
if command -v c++ >/dev/null 2>&1; then
    c++ -std=c++17 -Wall -Wextra -pedantic -Werror $(pc --cflags) -o "$tmp/classify_cpp" examples/classify.cpp \
        $(pc --libs)
    c=$(LD_LIBRARY_PATH="$root/lib" "$tmp/classify_cpp" $model $model/input_u8.npy 4)
    [ "$a" = "$c" ] || { echo "FAIL: the C++ example prints '$c', the C one '$a'"; exit 1; }
    LD_LIBRARY_PATH="$root/lib" "$tmp/classify_cpp" $model/missing.safetensors x 2>"$tmp/err" && {
        echo "FAIL: the C++ example accepted a missing model"; exit 1; }
    grep -q "missing.safetensors" "$tmp/err" || { echo "FAIL: the C++ error does not name the file: $(cat "$tmp/err")"; exit 1; }
else
    echo "    skipped: no C++ compiler (c++) for examples/classify.cpp"
    echo "SKIP install_cpp"
fi
# The CLI and its man page, made from the CLI's own help: a title, and every command and option it prints.
[ -x "$root/bin/vitq" ] && "$root/bin/vitq" --version | grep -q "^vitq [0-9]" || { echo "FAIL: bin/vitq"; exit 1; }
man="$root/share/man/man1/vitq.1"
grep -q '^\.TH VITQ 1 ' "$man" || { echo "FAIL: share/man/man1/vitq.1 has no .TH VITQ 1"; exit 1; }
commands=$("$root/bin/vitq" --help | sed -n 's/^  vitq \([a-z-]*\) .*/\1/p')
[ "$(echo "$commands" | wc -l)" -ge 6 ] || { echo "FAIL: vitq --help lists no commands"; exit 1; }
for c in $commands; do
    grep -q "^\.SS vitq $c\$" "$man" || { echo "FAIL: the man page has no section for vitq $c"; exit 1; }
    for o in $("$root/bin/vitq" "$c" --help | sed -n 's/^  \(--[a-z-]*\).*/\1/p'); do
        grep -q -- "$(echo "$o" | sed 's/-/\\\\-/g')" "$man" || { echo "FAIL: the man page lacks $o of $c"; exit 1; }
    done
done
# The Python package imports from the installed tree (run from $tmp: nothing from the source tree), finds the
# installed library through VITQ_LIBRARY, and records the library's final path ($prefix, without DESTDIR),
# where it looks when VITQ_LIBRARY is not set.
py=${PYTHON:-python3}
pydir="$root/lib/python3/dist-packages"
[ -f "$pydir/vitq/__init__.py" ] && [ -f "$pydir/vitq/_install.py" ] || { echo "FAIL: python package not installed"; exit 1; }
if command -v "$py" >/dev/null 2>&1; then
    got=$(cd "$tmp" && PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$pydir" VITQ_LIBRARY="$root/lib/libvitq.so" VITQ_NO_NUMPY=1 \
        "$py" -c 'import vitq; v = vitq.version(); print(vitq.__file__, vitq.library_path(), v)')
    want="$pydir/vitq/__init__.py $root/lib/libvitq.so $major."
    case "$got" in "$want"*) ;; *) echo "FAIL: installed python package: '$got', expected '$want...'"; exit 1 ;; esac
    recorded=$(cd "$tmp" && PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$pydir" "$py" -c 'from vitq import _install; print(_install.LIBRARY)')
    [ "$recorded" = "$prefix/lib/libvitq.so.$major" ] || { echo "FAIL: python package records '$recorded'"; exit 1; }
fi
make --no-print-directory uninstall PREFIX=$prefix DESTDIR="$tmp" >/dev/null
left=$(find "$root" -type f -o -type l)
[ -z "$left" ] || { echo "FAIL: make uninstall left $left"; exit 1; }
echo "PASS install: installed tree builds with pkg-config and runs examples/classify.c (shared and static) and classify.cpp; vitq, vitq.1 and the python package installed and uninstalled"
