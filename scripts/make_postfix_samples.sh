#!/bin/bash
# Make real Postfix TLS-failure logs with Debian's Postfix and OpenSSL.
#
# Usage (as root, on a throw-away Debian 12 machine):
#     scripts/make_postfix_samples.sh [OUT_DIR]
#
# Installs postfix, openssl and python3 from Debian, configures Postfix on the
# loopback interface only, runs every scenario of scripts/postfix_samples/ against
# it (loopback clients for inbound, loopback SMTP servers for outbound), and
# writes:
#     OUT_DIR/raw.log            the lines Postfix wrote, untouched
#     OUT_DIR/anonymised.log     the same with documentation names and addresses
# Copy anonymised.log to sample_logs/postfix/ by hand after reading it; the
# expected events next to it are worked out by hand, never by a program.
#
# It takes a few minutes and is not run in CI. It overwrites /etc/postfix/main.cf
# and master.cf, adds a marked block to /etc/hosts for the run, and removes it
# again at the end.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
helpers=$here/postfix_samples
out=${1:-/var/tmp/pfsamples/out}
work=/var/tmp/pfsamples
certs=/etc/postfix/tls  # made fresh on each run by make_certs.sh
log=/var/log/postfix-samples.log
hosts_begin="# smtplogscan postfix samples: begin"
hosts_end="# smtplogscan postfix samples: end"

say() { printf '== %s\n' "$*" >&2; }

install_packages() {
    say "installing postfix, openssl, python3"
    apt-get update -qq
    # "No configuration": we write main.cf ourselves below.
    echo "postfix postfix/main_mailer_type select No configuration" \
        | debconf-set-selections
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        postfix openssl python3 ca-certificates >/dev/null
}

add_hosts() {
    remove_hosts
    {
        echo "$hosts_begin"
        grep -v '^#' "$helpers/peers.tsv" | cut -f1,2
        echo "$hosts_end"
    } >> /etc/hosts
}

remove_hosts() {
    sed -i "/^$hosts_begin\$/,/^$hosts_end\$/d" /etc/hosts
}

configure_postfix() {
    say "configuring postfix on loopback"
    postfix stop >/dev/null 2>&1 || true
    cp /etc/postfix/master.cf.proto /etc/postfix/master.cf
    : > /etc/postfix/main.cf

    postconf -e \
        "compatibility_level = 3.6" \
        "myhostname = mx1.lab.test" \
        "mydomain = lab.test" \
        "myorigin = \$myhostname" \
        "mydestination = \$myhostname, localhost" \
        "inet_interfaces = 127.0.0.1, [::1]" \
        "inet_protocols = all" \
        "mynetworks = 127.0.0.0/8 [::1]/128" \
        "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination" \
        "alias_maps = hash:/etc/aliases" \
        "alias_database = hash:/etc/aliases" \
        "maillog_file = $log" \
        "smtputf8_enable = no" \
        "biff = no"

    # Inbound TLS: our own self-signed certificate, opportunistic STARTTLS,
    # loglevel 1 so that successes ("Anonymous TLS connection established
    # from ...") are logged, and a short STARTTLS timeout for the slow client.
    postconf -e \
        "smtpd_tls_cert_file = $certs/mx1.crt" \
        "smtpd_tls_key_file = $certs/mx1.key" \
        "smtpd_tls_security_level = may" \
        "smtpd_tls_loglevel = 1" \
        "smtpd_tls_protocols = >=TLSv1.2" \
        "smtpd_tls_mandatory_protocols = >=TLSv1.2" \
        "smtpd_starttls_timeout = 8s" \
        "smtpd_tls_session_cache_database ="

    # Outbound TLS: opportunistic by default, a per-destination policy table
    # for the mandatory levels, the lab CA as trust anchor, and no session
    # cache so that every delivery does a full handshake. Next hops come from
    # the transport table and are resolved from /etc/hosts, never from DNS.
    #
    # Postfix 3.7 runs OpenSSL at security level 0 with its default cipher
    # lists, so a 1024-bit DH group or TLS 1.0 passes unnoticed. Two common
    # hardenings make them fail: TLS >= 1.2 everywhere (both directions), and
    # an "@SECLEVEL=2" in the "high" cipher list, which the policy table
    # selects with ciphers=high for some peers.
    #
    # A handshake that fails at level "may" is retried in plaintext, but only
    # for mail that has waited in the queue at least minimal_backoff_time
    # (Postfix's smtp_connect.c); on the first attempt the mail is deferred
    # with "Cannot start TLS: handshake failure". A short backoff lets the
    # retry in phase 3 show the plaintext fallback.
    postconf -e \
        "smtp_tls_protocols = >=TLSv1.2" \
        "smtp_tls_mandatory_protocols = >=TLSv1.2" \
        "tls_high_cipherlist = HIGH:!aNULL:@SECLEVEL=2" \
        "minimal_backoff_time = 15s" \
        "maximal_backoff_time = 60s" \
        "queue_run_delay = 15s" \
        "smtp_tls_security_level = may" \
        "smtp_tls_loglevel = 1" \
        "smtp_tls_CAfile = $certs/ca.crt" \
        "smtp_tls_session_cache_database =" \
        "smtp_tls_policy_maps = texthash:/etc/postfix/tls_policy" \
        "transport_maps = texthash:/etc/postfix/transport" \
        "smtp_host_lookup = native" \
        "smtp_dns_support_level = disabled" \
        "smtp_connect_timeout = 10s"

    # The policy table is keyed by the verbatim next hop, so "[name]" and
    # "[name]:25" reach the same server under two different policies.
    cat > /etc/postfix/transport <<'EOF'
weakdh.test         smtp:[mx.dh1024.test]
weakdh-enc.test     smtp:[mx.dh1024.test]:25
tls10.test          smtp:[mx.tls10.test]
tls10-enc.test      smtp:[mx.tls10.test]:25
rsa1024.test        smtp:[mx.rsa1024.test]
rsa1024-sec.test    smtp:[mx.rsa1024.test]:25
sha1.test           smtp:[mx.sha1.test]
sha1-sec.test       smtp:[mx.sha1.test]:25
expired.test        smtp:[mx.expired.test]
expired-ver.test    smtp:[mx.expired.test]:25
nostarttls.test     smtp:[mx.nostarttls.test]
nostarttls-enc.test smtp:[mx.nostarttls.test]:25
refuse.test         smtp:[mx.refuse.test]
refuse-enc.test     smtp:[mx.refuse.test]:25
good.test           smtp:[mx.good.test]
good-sec.test       smtp:[mx.good.test]:25
wrongname-sec.test  smtp:[mx.wrongname.test]:25
selfsigned-ver.test smtp:[mx.selfsigned.test]:25
EOF
    cat > /etc/postfix/tls_policy <<'EOF'
[mx.dh1024.test]        may ciphers=high
[mx.dh1024.test]:25     encrypt ciphers=high
[mx.tls10.test]:25      encrypt
[mx.rsa1024.test]       may ciphers=high
[mx.rsa1024.test]:25    secure match=nexthop ciphers=high
[mx.sha1.test]:25       secure match=nexthop ciphers=high
[mx.expired.test]:25    verify
[mx.nostarttls.test]:25 encrypt
[mx.refuse.test]:25     encrypt
[mx.good.test]:25       secure match=nexthop
[mx.wrongname.test]:25  secure match=nexthop
[mx.selfsigned.test]:25 verify
EOF

    # No chroot: the chroot would need copies of /etc/hosts and the certificates.
    postconf -F '*/*/chroot = n'

    # Submission (587, STARTTLS required) and smtps (465, implicit TLS), as in
    # Debian's commented-out master.cf examples. Their syslog_name gives the
    # program names postfix/submission/smtpd and postfix/smtps/smtpd.
    postconf -M "submission/inet = submission inet n - n - - smtpd"
    postconf -P "submission/inet/syslog_name = postfix/submission" \
        "submission/inet/smtpd_tls_security_level = encrypt" \
        "submission/inet/smtpd_client_restrictions = permit_mynetworks,reject"
    postconf -M "smtps/inet = smtps inet n - n - - smtpd"
    postconf -P "smtps/inet/syslog_name = postfix/smtps" \
        "smtps/inet/smtpd_tls_wrappermode = yes"

    grep -q '^postmaster:' /etc/aliases 2>/dev/null || echo "postmaster: root" >> /etc/aliases
    newaliases
    postfix check
}

start_peer_servers() {
    say "starting loopback SMTP servers"
    local py="python3 $helpers/peer_server.py"
    pids=()
    # Offers only DHE with a 1024-bit group, at TLS 1.2 (TLS 1.3 has no
    # custom DH groups): a client at OpenSSL security level 2 says
    # "dh key too small". SECLEVEL=0 lets the server side use the group.
    $py --listen 127.0.0.21 --name mx.dh1024.test \
        --cert "$certs/mx.dh1024.test.crt" --key "$certs/mx.dh1024.test.key" \
        --dhparam "$certs/dh1024.pem" --max-version 1.2 \
        --ciphers 'DHE-RSA-AES256-GCM-SHA384:DHE-RSA-AES128-GCM-SHA256:@SECLEVEL=0' &
    pids+=($!)
    # An old server that speaks TLS 1.0 only.
    $py --listen 127.0.0.22 --name mx.tls10.test \
        --cert "$certs/mx.tls10.test.crt" --key "$certs/mx.tls10.test.key" \
        --min-version 1.0 --max-version 1.0 --ciphers 'DEFAULT:@SECLEVEL=0' &
    pids+=($!)
    # Certificate key of 1024 bits, accepted by the server at SECLEVEL=0.
    $py --listen 127.0.0.23 --name mx.rsa1024.test \
        --cert "$certs/mx.rsa1024.test.crt" --key "$certs/mx.rsa1024.test.key" \
        --ciphers 'DEFAULT:@SECLEVEL=0' &
    pids+=($!)
    # Certificate signed by the CA with SHA-1.
    $py --listen 127.0.0.24 --name mx.sha1.test \
        --cert "$certs/mx.sha1.test.crt" --key "$certs/mx.sha1.test.key" \
        --ciphers 'DEFAULT:@SECLEVEL=0' &
    pids+=($!)
    # Certificate that expired in 2021.
    $py --listen 127.0.0.25 --name mx.expired.test \
        --cert "$certs/mx.expired.test.crt" --key "$certs/mx.expired.test.key" &
    pids+=($!)
    # No STARTTLS in the EHLO reply.
    $py --listen 127.0.0.26 --name mx.nostarttls.test --starttls absent &
    pids+=($!)
    # Offers STARTTLS, then answers it with 454.
    $py --listen 127.0.0.27 --name mx.refuse.test --starttls refuse &
    pids+=($!)
    # Good certificate from the lab CA: the successes.
    $py --listen 127.0.0.28 --name mx.good.test \
        --cert "$certs/mx.good.test.crt" --key "$certs/mx.good.test.key" &
    pids+=($!)
    # Valid lab certificate, but for www.other.test.
    $py --listen 127.0.0.29 --name mx.wrongname.test \
        --cert "$certs/mx.wrongname.test.crt" --key "$certs/mx.wrongname.test.key" &
    pids+=($!)
    # Self-signed certificate.
    $py --listen 127.0.0.30 --name mx.selfsigned.test \
        --cert "$certs/mx.selfsigned.test.crt" --key "$certs/mx.selfsigned.test.key" &
    pids+=($!)
    sleep 1
}

stop_peer_servers() {
    local pid
    for pid in "${pids[@]:-}"; do
        [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    done
    pids=()
}

cleanup() {
    stop_peer_servers
    postfix stop >/dev/null 2>&1 || true
    remove_hosts
}

# send_out RCPT...: one message per recipient, submitted locally through
# sendmail/pickup, so that the smtp client delivers to the loopback servers.
send_out() {
    local rcpt
    for rcpt in "$@"; do
        printf 'Subject: sample to %s\n\nhello\n' "$rcpt" \
            | sendmail -f "root@mx1.lab.test" "$rcpt"
    done
}

wait_for_queue() {
    local i
    for i in $(seq 1 "${1:-60}"); do
        if ! postqueue -j | grep -q '"queue_name": *"\(incoming\|active\)"'; then
            return 0
        fi
        sleep 1
    done
}

phase_mixed() {
    say "phase 1: outbound deliveries and inbound clients, interleaved"
    # Outbound, first wave: every policy against every bad server. At level
    # "may" a failed handshake is retried in plaintext; at the mandatory
    # levels the mail is deferred.
    send_out user@good.test user@good-sec.test \
        user@weakdh.test user@weakdh-enc.test \
        user@tls10.test user@tls10-enc.test &
    local sender1=$!

    # Inbound clients, all scenarios at once (see clients.py).
    python3 "$helpers/clients.py" all &
    local clients=$!

    sleep 2
    send_out user@rsa1024.test user@rsa1024-sec.test \
        user@sha1.test user@sha1-sec.test \
        user@expired.test user@expired-ver.test \
        user@nostarttls.test user@nostarttls-enc.test \
        user@refuse.test user@refuse-enc.test \
        user@wrongname-sec.test user@selfsigned-ver.test
    wait "$sender1" "$clients"
    wait_for_queue 60
    sleep 3
}

phase_broken_setup() {
    say "phase 2: our own broken TLS set-ups, one reload each"
    # Each step breaks the smtpd certificate, key or DH file, reloads, and
    # lets one client try STARTTLS, so that the new smtpd process logs how it
    # fails to set up TLS. The last step restores the good set-up.
    local step
    for step in \
        "smtpd_tls_cert_file = $certs/missing.crt" \
        "smtpd_tls_key_file = $certs/missing.key" \
        "smtpd_tls_key_file = $certs/other.key" \
        "smtpd_tls_key_file = $certs/garbage.key" \
        "smtpd_tls_cert_file = $certs/mx1-weak.crt|smtpd_tls_key_file = $certs/mx1-weak.key" \
        "smtpd_tls_cert_file = $certs/mx1-weak.crt|smtpd_tls_key_file = $certs/mx1-weak.key|tls_medium_cipherlist = aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH:@SECLEVEL=2" \
        "smtpd_tls_dh1024_param_file = $certs/dh512.pem" \
        "smtpd_tls_dh1024_param_file = $certs/dh-broken.pem"
    do
        restore_smtpd_tls
        IFS='|' read -r -a settings <<< "$step"
        postconf -e "${settings[@]}"
        postfix reload
        sleep 2
        python3 "$helpers/clients.py" setup_probe
        sleep 1
    done
    restore_smtpd_tls
    postfix reload
    sleep 2
}

restore_smtpd_tls() {
    postconf -e \
        "smtpd_tls_cert_file = $certs/mx1.crt" \
        "smtpd_tls_key_file = $certs/mx1.key" \
        "smtpd_tls_dh1024_param_file ="
    postconf -X tls_medium_cipherlist
}

phase_retry_and_bounce() {
    say "phase 3: retry the deferred mail once more, then let it bounce"
    # The retry comes at least minimal_backoff_time after the mail arrived, so
    # at level "may" a failed handshake is now followed by a plaintext
    # delivery in the same smtp process; mandatory levels defer again. Then,
    # with maximal_queue_lifetime = 0, one more attempt fails and qmgr returns
    # the mail to the sender ("status=expired, returned to sender").
    python3 "$helpers/clients.py" good &
    local clients=$!
    postqueue -f
    wait_for_queue 60
    sleep 3
    postconf -e "maximal_queue_lifetime = 0" "bounce_queue_lifetime = 0"
    postfix reload
    sleep 2
    postqueue -f
    wait_for_queue 60
    wait "$clients"
    sleep 5
}

main() {
    [ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
    install_packages
    bash "$helpers/make_certs.sh" "$certs" >/dev/null
    trap cleanup EXIT
    add_hosts
    configure_postfix
    start_peer_servers

    rm -f "$log"
    postfix start
    sleep 3

    phase_mixed
    phase_broken_setup
    phase_retry_and_bounce

    postfix stop
    sleep 2
    mkdir -p "$out"
    cp "$log" "$out/raw.log"
    python3 "$helpers/anonymise.py" \
        < "$out/raw.log" > "$out/anonymised.log"
    say "wrote $out/raw.log and $out/anonymised.log"
}

main "$@"
