#!/bin/sh
# mkcerts.sh DIR — make the throw-away TLS material the integration tests use.
#
# Writes into DIR (created if missing), all keys EC P-256, no prompts:
#   ca.pem / ca.key               test CA (self-signed, CA:TRUE)
#   server.pem / server.key       server cert signed by the CA; CN and SAN
#                                 DNS:localhost, SAN IP:127.0.0.1
#   untrusted.pem / untrusted.key self-signed server cert for the same names,
#                                 not signed by the CA (verification must fail)
#   client.pem / client.key       client cert (CN wsi2kafka-test, clientAuth)
#                                 signed by the CA
# Certificates are valid for 30 days from now. Nothing here is secret: never
# use these files outside tests.
set -eu

if [ $# -ne 1 ]; then
	echo "usage: $0 DIR" >&2
	exit 64
fi
dir=$1
command -v openssl >/dev/null 2>&1 || {
	echo "mkcerts: openssl not found (apt-get install openssl)" >&2
	exit 69
}
mkdir -p "$dir"
cd "$dir"
umask 077

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mkcerts.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

# One small extension file per certificate kind, so that "openssl x509 -req"
# (which has no -addext in 3.0) needs no openssl.cnf section.
cat >"$tmp/ca.ext" <<'EOF'
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
cat >"$tmp/server.ext" <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
cat >"$tmp/untrusted.ext" <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
EOF
cat >"$tmp/client.ext" <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF

newkey() {
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
	    -out "$1" 2>/dev/null
}

# CA: self-signed.
newkey ca.key
openssl req -new -key ca.key -subj "/CN=wsi2kafka test CA" -out "$tmp/ca.csr"
openssl x509 -req -in "$tmp/ca.csr" -signkey ca.key -days 30 -sha256 \
    -extfile "$tmp/ca.ext" -out ca.pem 2>/dev/null

# Server and client: signed by the CA.
signed() {	# name subject extfile
	newkey "$1.key"
	openssl req -new -key "$1.key" -subj "$2" -out "$tmp/$1.csr"
	openssl x509 -req -in "$tmp/$1.csr" -CA ca.pem -CAkey ca.key \
	    -set_serial "0x$(openssl rand -hex 8)" -days 30 -sha256 \
	    -extfile "$3" -out "$1.pem" 2>/dev/null
}
signed server "/CN=localhost" "$tmp/server.ext"
signed client "/CN=wsi2kafka-test" "$tmp/client.ext"

# Untrusted: self-signed, same names as the real server cert.
newkey untrusted.key
openssl req -new -key untrusted.key -subj "/CN=localhost" \
    -out "$tmp/untrusted.csr"
openssl x509 -req -in "$tmp/untrusted.csr" -signkey untrusted.key -days 30 \
    -sha256 -extfile "$tmp/untrusted.ext" -out untrusted.pem 2>/dev/null

# Certificates are public; keys stay 0600 (the daemon's checks may insist).
chmod 644 ca.pem server.pem untrusted.pem client.pem
openssl verify -CAfile ca.pem server.pem client.pem >/dev/null
