#!/usr/bin/env bash
# Fresh-machine set-up of the hotline platform (no Docker needed). Idempotent and fast when
# everything is already there; run it from anywhere:  scripts/bootstrap.sh
#
#   a) system packages: prometheus + promtool and kcat (and Java 17 / Maven if missing), a CJK font
#      and poppler-utils for the reports, via apt
#   b) the tools venv .tools/ (uv, and SecantusDB==0.7.0b3 - GPL-2.0, kept out of the project venv)
#   c) the project venv .venv/ from uv.lock, including the dev group
#   d) grpcurl into .tools/bin (a warning, not a failure, if Go or its module proxy is unavailable)
#   d2) axe-core's axe.min.js into .tools/axe-core/<version>/ (npm pack; MPL-2.0) for the workbench's
#      accessibility check (tests/e2e/test_workbench_day.py)
#   e) the Apache Kafka broker jars from Maven Central (hotline_dev.infra.fetch_kafka)
#
# Afterwards:  .venv/bin/hotline infra start   (or .venv/bin/python -m hotline_dev.infra start)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
SECANTUS_VERSION=0.7.0b3
GRPCURL_VERSION=v1.9.3
T0=$(date +%s)

if [[ -t 1 ]]; then C=$'\033[1;36m' Y=$'\033[1;33m' R=$'\033[1;31m' N=$'\033[0m'; else C= Y= R= N=; fi
say() { printf '%sbootstrap%s: %s\n' "$C" "$N" "$*"; }
warn() { printf '%sbootstrap: warning%s: %s\n' "$Y" "$N" "$*" >&2; }
die() { printf '%sbootstrap: error%s: %s\n' "$R" "$N" "$*" >&2; exit 1; }

# --- a) system packages -------------------------------------------------------------------
missing=()
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v kcat >/dev/null 2>&1 || missing+=(kcat)
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
# reports (metrics): a CJK font for the charts and PDFs, poppler's pdftoppm/pdftotext for their tests
fc-list :lang=zh 2>/dev/null | grep -q . || missing+=(fonts-wqy-microhei)
command -v pdftoppm >/dev/null 2>&1 || missing+=(poppler-utils)
# the workbench's browser tests (tests/e2e/test_workbench.py): Debian's Chromium, driven by Playwright
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if ((${#missing[@]})); then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        say "installing ${missing[*]} with apt-get…"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        warn "missing ${missing[*]}; install them (apt-get install ${missing[*]}) - needs root"
    fi
else
    say "system packages ok (prometheus, kcat, java, mvn, CJK font, poppler-utils, chromium)"
fi

# --- b) tools venv with uv and SecantusDB ---------------------------------------------------
if [[ ! -x .tools/bin/python ]]; then
    say "creating the tools venv .tools…"
    python3 -m venv .tools
fi
if [[ ! -x .tools/bin/uv ]]; then
    say "installing uv into .tools…"
    .tools/bin/pip install -q uv
fi
have=$(.tools/bin/uv pip show --python .tools/bin/python SecantusDB 2>/dev/null | awk '/^Version:/ {print $2}' || true)
if [[ $have != "$SECANTUS_VERSION" || ! -x .tools/bin/secantusd-py ]]; then
    say "installing SecantusDB==$SECANTUS_VERSION into .tools (GPL-2.0; never into .venv)…"
    .tools/bin/uv pip install -q --python .tools/bin/python "SecantusDB==$SECANTUS_VERSION"
else
    say "SecantusDB $SECANTUS_VERSION ok"
fi

# --- c) project venv ------------------------------------------------------------------------
if [[ -f uv.lock ]]; then
    say "syncing .venv from uv.lock (with the dev group)…"
    .tools/bin/uv sync --frozen --group dev --quiet
else
    warn "no uv.lock; resolving with uv sync"
    .tools/bin/uv sync --group dev --quiet
fi

# --- d) grpcurl -------------------------------------------------------------------------------
if [[ -x .tools/bin/grpcurl ]]; then
    say "grpcurl ok"
else
    GO=$(command -v go || true)
    [[ -z $GO && -x /usr/local/go/bin/go ]] && GO=/usr/local/go/bin/go
    if [[ -n $GO ]]; then
        say "installing grpcurl $GRPCURL_VERSION with go install…"
        if ! GOBIN="$ROOT/.tools/bin" "$GO" install "github.com/fullstorydev/grpcurl/cmd/grpcurl@$GRPCURL_VERSION"; then
            warn "go install grpcurl failed (Go module proxy unreachable?); grpcurl checks will be skipped"
        fi
    else
        warn "Go is not installed; grpcurl not installed (grpcurl checks will be skipped)"
    fi
fi

# --- d2) axe-core (the workbench's accessibility check, tests/e2e/test_workbench_day.py) ---------
AXE_VERSION=4.10.2
if [[ -f .tools/axe-core/$AXE_VERSION/axe.min.js ]]; then
    say "axe-core ok"
elif command -v npm >/dev/null 2>&1; then
    say "fetching axe-core $AXE_VERSION (npm pack) into .tools/axe-core…"
    mkdir -p ".tools/axe-core/$AXE_VERSION"
    if (cd ".tools/axe-core" && npm pack --silent "axe-core@$AXE_VERSION" >/dev/null \
            && tar -xzf "axe-core-$AXE_VERSION.tgz" -C "$AXE_VERSION" --strip-components=1 package/axe.min.js \
            && rm -f "axe-core-$AXE_VERSION.tgz"); then
        say "axe-core ok"
    else
        warn "npm pack axe-core failed; the accessibility check will fail until it is fetched"
    fi
else
    warn "npm is not installed: axe-core not fetched (apt-get install -y npm)"
fi

# --- e) Kafka jars ----------------------------------------------------------------------------
say "checking the Kafka broker jars…"
.venv/bin/python -c "from hotline_dev import infra; print(infra.fetch_kafka())" >/dev/null \
    || die "fetching the Kafka jars failed (see above)"

say "done in $(($(date +%s) - T0)) s - start the infrastructure with: .venv/bin/python -m hotline_dev.infra start"
