#!/bin/bash
# Make the certificates and DH groups of the Exim sample lab in DIR.
#
#   ca.pem / ca.key         a private CA, trusted by the lab's Exim
#   mx.pem / mx.key         Exim's own certificate (RSA 2048, signed by the CA)
#   good.pem / good.key     a peer certificate signed by the CA
#   self.pem / self.key     a self-signed peer certificate
#   expired.pem / .key      a peer certificate signed by the CA that expired in 2021
#   weak.pem / weak.key     a peer certificate with a 1024-bit RSA key
#   dh512.pem, dh1024.pem   finite-field DH groups that are too small
set -euo pipefail
dir=$1
mkdir -p "$dir"
cd "$dir"

key() { openssl genrsa -out "$1" "${2:-2048}" 2>/dev/null; }
csr() { openssl req -new -key "$1" -subj "/CN=$2" -out "$3" 2>/dev/null; }

key ca.key
openssl req -x509 -new -key ca.key -days 3650 -subj "/CN=Lab Private CA" \
    -out ca.pem 2>/dev/null

sign() {  # sign NAME CN [openssl ca dates]
    csr "$1.key" "$2" "$1.csr"
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
        -days 825 -out "$1.pem" \
        -extfile <(printf 'subjectAltName=DNS:%s\n' "$2") 2>/dev/null
}

key mx.key && sign mx localhost
key good.key && sign good localhost
key weak.key 1024 && sign weak localhost

key self.key
openssl req -x509 -new -key self.key -days 825 -subj "/CN=localhost" \
    -out self.pem 2>/dev/null

# `openssl ca` is the one OpenSSL 3.0 tool that takes explicit validity dates.
key expired.key
csr expired.key localhost expired.csr
mkdir -p ca.db && : > ca.db/index.txt && echo 1000 > ca.db/serial
cat > ca.cnf <<CNF
[ca]
default_ca = lab
[lab]
dir = ca.db
database = ca.db/index.txt
serial = ca.db/serial
new_certs_dir = ca.db
certificate = ca.pem
private_key = ca.key
default_md = sha256
policy = anything
[anything]
commonName = supplied
CNF
openssl ca -batch -config ca.cnf -in expired.csr -out expired.pem \
    -startdate 20200101000000Z -enddate 20210101000000Z -notext 2>/dev/null

openssl dhparam -out dh512.pem 512 2>/dev/null
openssl dhparam -out dh1024.pem 1024 2>/dev/null
