#!/bin/bash
# Make the keys, certificates and DH groups the Postfix sample scenarios need.
#
# Usage: make_certs.sh DIR
#
# Everything is made fresh on each run with Debian's openssl: a small private CA
# that Postfix's smtp client trusts, good and bad server certificates for the
# loopback peers, and weak DH groups. Nothing here is secret or reused.
set -euo pipefail

dir=$1
rm -rf "$dir"
mkdir -p "$dir/ca/newcerts"
cd "$dir"

touch ca/index.txt
echo 1000 > ca/serial

# `openssl ca` is used rather than `openssl x509 -req` because it can set any
# start and end date (for the expired certificate) and any digest (for SHA-1).
cat > ca.cnf <<'EOF'
[ ca ]
default_ca = lab_ca

[ lab_ca ]
dir = ./ca
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
certificate = ./ca.crt
private_key = ./ca.key
default_md = sha256
default_days = 825
policy = anything
unique_subject = no
copy_extensions = copy
email_in_dn = no

[ anything ]
commonName = supplied

[ leaf ]
basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
EOF

# The lab CA: 3072-bit RSA, SHA-256, trusted by Postfix's smtp client only.
openssl req -x509 -new -newkey rsa:3072 -nodes -keyout ca.key -out ca.crt \
    -days 3650 -subj "/CN=Lab Test CA" 2>/dev/null

# leaf NAME BITS [openssl ca options...]: a CA-signed server certificate.
leaf() {
    local name=$1 bits=$2
    shift 2
    openssl req -new -newkey "rsa:$bits" -nodes -keyout "$name.key" \
        -out "$name.csr" -subj "/CN=$name" \
        -addext "subjectAltName=DNS:$name" 2>/dev/null
    openssl ca -batch -config ca.cnf -extensions leaf -in "$name.csr" \
        -out "$name.crt" -notext "$@" 2>/dev/null
}

leaf mx.good.test 2048
leaf mx.dh1024.test 2048
leaf mx.tls10.test 2048
leaf mx.refuse.test 2048
leaf mx.rsa1024.test 1024
leaf mx.sha1.test 2048 -md sha1
leaf mx.expired.test 2048 -startdate 20200101000000Z -enddate 20210101000000Z
# A valid certificate, but for a name the client does not ask for.
leaf www.other.test 2048
cp www.other.test.crt mx.wrongname.test.crt
cp www.other.test.key mx.wrongname.test.key

# A self-signed certificate for a peer (not issued by the lab CA).
openssl req -x509 -new -newkey rsa:2048 -nodes -keyout mx.selfsigned.test.key \
    -out mx.selfsigned.test.crt -days 365 -subj "/CN=mx.selfsigned.test" \
    -addext "subjectAltName=DNS:mx.selfsigned.test" 2>/dev/null

# Our own smtpd certificate: self-signed, as on most small MX hosts, so that a
# verifying client rejects it.
openssl req -x509 -new -newkey rsa:2048 -nodes -keyout mx1.key -out mx1.crt \
    -days 365 -subj "/CN=mx1.lab.test" -addext "subjectAltName=DNS:mx1.lab.test" \
    2>/dev/null

# Broken set-ups for our own smtpd (phase 2 of the run):
# a key that does not belong to mx1.crt,
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out other.key 2>/dev/null
# a 1024-bit certificate for our own server,
openssl req -x509 -new -newkey rsa:1024 -nodes -keyout mx1-weak.key \
    -out mx1-weak.crt -days 365 -subj "/CN=mx1.lab.test" 2>/dev/null
# a key file that is not PEM at all,
head -c 600 /dev/urandom | base64 > garbage.key

# DH groups: 1024 bits for the weak peer and for our own server, 512 bits
# (OpenSSL 3 still makes one when asked), and a file that is not a DH group.
openssl dhparam -out dh1024.pem 1024 2>/dev/null
openssl dhparam -out dh512.pem 512 2>/dev/null || true
printf -- '-----BEGIN DH PARAMETERS-----\nbm90IGEgZGggZ3JvdXA=\n-----END DH PARAMETERS-----\n' \
    > dh-broken.pem

rm -f ./*.csr
ls
