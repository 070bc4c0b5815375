#!/bin/sh
# Build a newer git (Debian trixie's source package, 2.47: reftable, `git init --ref-format`) once
# into a cache folder, reusing it when present, and print its bin directory (only that, on stdout).
# The hook and plugin tests run on both the system git and this one (tests/conftest.py: git_bin).
# The build takes about 5 minutes on 2 cores; nothing outside the cache folder is installed,
# apart from a deb-src line for trixie (apt-get source needs it; binary packages are untouched).
set -eu
VERSION=2.47.3
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/periscope-test/git-$VERSION"
if [ ! -x "$CACHE/bin/git" ]; then
    if ! apt-cache showsrc "git=1:$VERSION-0+deb13u1" 2>/dev/null | grep -q '^Package: git'; then
        SOURCES=/etc/apt/sources.list.d/periscope-trixie-src.sources
        # the Debian mirror this machine is already set up with (its first URIs line)
        MIRROR=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
        [ -n "$MIRROR" ] || MIRROR=$(sed -n 's/^deb[[:space:]]\{1,\}\(\[[^]]*\][[:space:]]\{1,\}\)\{0,1\}\([^[:space:]]*\).*/\2/p' /etc/apt/sources.list 2>/dev/null | head -n 1)
        printf '%s\n' 'Types: deb-src' "URIs: $MIRROR" 'Suites: trixie' \
            'Components: main' 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' >"$SOURCES"
        apt-get update -q >&2
    fi
    command -v make >/dev/null && command -v cc >/dev/null || apt-get install -y -q build-essential >&2
    [ -f /usr/include/zlib.h ] || apt-get install -y -q zlib1g-dev >&2
    [ -f /usr/include/expat.h ] || apt-get install -y -q libexpat1-dev >&2
    BUILD=$(mktemp -d)
    trap 'rm -rf "$BUILD"' EXIT
    (cd "$BUILD" && apt-get source -q --download-only "git=1:$VERSION-0+deb13u1" >&2 \
        && dpkg-source -x --skip-patches git_*.dsc src >&2)
    make -C "$BUILD/src" -j"$(nproc)" NO_TCLTK=1 NO_GETTEXT=1 NO_CURL=1 NO_PERL=1 NO_PYTHON=1 \
        NO_OPENSSL=1 prefix="$CACHE" install >&2
fi
"$CACHE/bin/git" --version >&2
echo "$CACHE/bin"
