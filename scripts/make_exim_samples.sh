#!/bin/bash
# Make real Exim TLS-failure logs with Debian's Exim (GnuTLS build) on loopback.
#
# Usage (as root, on a Debian 12 machine):
#     scripts/make_exim_samples.sh [OUT_DIR]
#
# Debian's exim4 packages conflict with postfix, so nothing is installed as a
# package: exim4-daemon-light, exim4-base and exim4-config are downloaded and
# unpacked into $LAB/root, and only their libraries are installed with apt-get.
# Exim runs with a configuration of ours (scripts/exim_samples/exim.conf), with
# its spool and log under $LAB, listening on 127.0.0.1 only. The peers it
# delivers to and the clients that connect to it are the Python helpers of
# scripts/exim_samples/, all on 127.0.0.1.
#
# Two runs: "stamped" (log_timezone, +pid) and "plain" (Exim's defaults). Each
# writes OUT_DIR/<run>.raw.log (untouched) and OUT_DIR/<run>.log (anonymised).
# Copy the anonymised logs to sample_logs/exim/ by hand after reading them; the
# expected events next to them are worked out by hand, never by a program.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
helpers=$here/exim_samples
out=${1:-/tmp/exim-lab/out}
lab=${LAB:-/tmp/exim-lab}
root=$lab/root
exim=$root/usr/sbin/exim4

say() { printf '== %s\n' "$*" >&2; }

unpack_exim() {
    [[ -x $exim ]] && return
    say "downloading and unpacking exim4 (not installing it)"
    apt-get update -qq
    mkdir -p "$lab/debs" "$root"
    (cd "$lab/debs" && apt-get download -qq exim4-daemon-light exim4-base exim4-config)
    for deb in "$lab"/debs/*.deb; do dpkg -x "$deb" "$root"; done
    # Only the libraries the binary links to; they do not conflict with postfix.
    apt-get install -y -qq libidn12 libgnutls30 libgnutls-dane0 libdb5.3 libpcre2-8-0 \
        openssl python3 >/dev/null
    id Debian-exim >/dev/null 2>&1 \
        || useradd --system --no-create-home --shell /usr/sbin/nologin Debian-exim
}

configure() {  # configure SELECTOR LOGTZ
    sed -e "s#EXIM#$exim#" -e "s#LAB#$lab#g" -e "s#SELECTOR#$1#" -e "s#LOGTZ#$2#" \
        "$helpers/exim.conf" > "$lab/exim.conf"
}

ports() {
    cat > "$lab/ports" <<'PORTS'
good.may.test: 2601
good.must.test: 2601
rude.may.test: 2602
tls10.must.test: 2603
tls10.may.test: 2603
dh512.may.test: 2604
dh1024.must.test: 2605
dh1024.may.test: 2605
self.must.test: 2606
self.verify.may.test: 2606
expired.must.test: 2607
weak.must.test: 2608
ccert.must.test: 2609
notls.must.test: 2610
notls.may.test: 2610
refuse.must.test: 2611
abort.may.test: 2612
abort.must.test: 2612
reject.must.test: 2613
PORTS
}

OUTBOUND=(good.may.test good.must.test rude.may.test tls10.must.test tls10.may.test
    dh512.may.test dh1024.must.test dh1024.may.test self.must.test
    self.verify.may.test expired.must.test weak.must.test ccert.must.test
    notls.must.test notls.may.test refuse.must.test abort.may.test abort.must.test
    reject.must.test)

run() {  # run NAME SELECTOR LOGTZ
    say "run $1"
    stop_exim
    rm -rf "${lab:?}/spool" "$lab/log"
    mkdir -p "$lab/spool" "$lab/log"
    chown Debian-exim: "$lab/spool" "$lab/log"
    configure "$2" "$3"
    "$exim" -C "$lab/exim.conf" -bd -oX 2525:2465:2526 -oP "$lab/daemon.pid"
    sleep 1
    python3 "$helpers/clients.py"
    for domain in "${OUTBOUND[@]}"; do
        # One message at a time, with no hints left from the one before: the
        # peers all live on 127.0.0.1, and Exim keys its retry data by address.
        rm -rf "$lab/spool/db"
        printf 'Subject: lab\n\nhello\n' \
            | timeout 60 "$exim" -C "$lab/exim.conf" -odi -f lab@mx1.example.com "user@$domain"
    done
    sleep 1
    stop_exim
    cp "$lab/log/mainlog" "$out/$1.raw.log"
    python3 "$helpers/anonymise.py" < "$out/$1.raw.log" > "$out/$1.log"
}

stop_exim() {
    local pid
    pid=$(cat "$lab/daemon.pid" 2>/dev/null || true)
    if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; fi
    rm -f "$lab/daemon.pid"
    sleep 0.5
}

main() {
    mkdir -p "$out" "$lab"
    chmod 755 "$lab"
    unpack_exim
    [[ -f $lab/certs/mx.pem ]] || bash "$helpers/make_certs.sh" "$lab/certs"
    chmod 644 "$lab"/certs/*.key
    ports
    python3 "$helpers/peer_server.py" "$lab/certs" good:2601 rude:2602 tls10:2603 \
        dh512:2604 dh1024:2605 self:2606 expired:2607 weak:2608 ccert:2609 \
        notls:2610 refuse:2611 abort:2612 reject:2613 &
    peers=$!
    trap 'kill $peers 2>/dev/null || true; stop_exim' EXIT
    sleep 1
    run stamped "+pid" "log_timezone = true"
    run plain "" ""
    say "wrote $out"
}

main "$@"
