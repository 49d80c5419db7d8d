#!/usr/bin/env bash
# stage-glibc.sh BINARY ROOTFS copies into ROOTFS, at the paths the build
# host has them, the shared libraries BINARY loads (as `ldd` lists them: the
# dynamic loader and libc) plus the rest of the glibc runtime and the C++
# runtime that an HSM vendor's PKCS #11 module usually needs (libm,
# libpthread, libdl, librt, libresolv, libgcc_s, libstdc++). `make
# image-pkcs11` uses it to build Dockerfile.pkcs11 FROM scratch: no base
# image is pulled. A module's other libraries are mounted with it.
set -euo pipefail
bin=$1 rootfs=$2
[ -x "$bin" ] || { echo "stage-glibc: $bin is not an executable" >&2; exit 1; }
command -v ldd >/dev/null || { echo "stage-glibc: ldd is required" >&2; exit 1; }

libs=$(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
[ -n "$libs" ] || { echo "stage-glibc: $bin is not dynamically linked (build it with CGO_ENABLED=1)" >&2; exit 1; }
libc=$(ldd "$bin" | awk '$1 == "libc.so.6" { print $3 }')
libdir=$(dirname "$libc")
for extra in libm.so.6 libpthread.so.0 libdl.so.2 librt.so.1 libresolv.so.2 libgcc_s.so.1 libstdc++.so.6; do
	if [ -e "$libdir/$extra" ]; then
		libs="$libs
$libdir/$extra"
	else
		echo "stage-glibc: $libdir/$extra not found on this host; not staged" >&2
	fi
done
for lib in $libs; do
	mkdir -p "$rootfs$(dirname "$lib")"
	cp -L "$lib" "$rootfs$lib" # the file, not the host's symbolic link
	echo "staged $lib"
done
