#!/bin/sh
# The layering of src/ (docs/design.md, "Layers"): includes only downward, no circular dependency
# between files (by includes, and by symbols of the built objects in $BUILD/src).
BUILD=${BUILD:-build/noomp}
PYTHON=${PYTHON:-python3}
if "$PYTHON" tests/arch/check_layers.py --self-test; then
    echo "PASS layering checker catches an upward include and a cycle"
else
    echo "FAIL layering checker self-test"
fi
if "$PYTHON" tests/arch/check_layers.py; then
    echo "PASS includes go downward only, no include cycle"
else
    echo "FAIL includes: see the lines above"
fi
if [ -d "$BUILD/src" ]; then
    if "$PYTHON" tests/arch/check_layers.py --objects "$BUILD/src" >/dev/null; then
        echo "PASS no symbol cycle between the objects of $BUILD/src"
    else
        "$PYTHON" tests/arch/check_layers.py --objects "$BUILD/src" | grep "symbol cycle"
        echo "FAIL symbol cycles: see the lines above"
    fi
else
    echo "SKIP symbol cycles: $BUILD/src has no objects (build first)"
fi
