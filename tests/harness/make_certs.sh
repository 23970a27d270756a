#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# make_certs.sh DIR - the certificates the TLS tests use, made at test time
# with the openssl command so that no private key is ever committed:
#   ca.pem                    the test CA (ECDSA P-256)
#   server.pem server.key     ECDSA P-256, CN localhost, SAN localhost and 127.0.0.1
#   server-rsa.pem .key       the same in RSA-2048
#   client.pem client.key     good client: CN device-1, SAN DNS device-1.example
#   expired.pem expired.key   signed by the CA, expired in 2020
#   revoked.pem revoked.key   signed by the CA, revoked in crl.pem
#   other-ca.pem              another CA, and other.pem other.key signed by it
#   crl.pem                   the CA's revocation list (revoked.pem in it)
# Everything is made with "openssl ca" from a throw-away CA directory.
set -eu
dir=$1
mkdir -p "$dir"
cd "$dir"
mkdir -p ca other
: > ca/index.txt
: > other/index.txt
echo 1000 > ca/serial
echo 2000 > other/serial

cat > ca.cnf <<'CNF'
[ ca ]
default_ca = this
[ this ]
dir = ca
database = $dir/index.txt
serial = $dir/serial
new_certs_dir = $dir
certificate = ca.pem
private_key = ca.key
default_md = sha256
default_days = 30
default_crl_days = 30
policy = anything
unique_subject = no
copy_extensions = copy
[ other ]
dir = other
database = $dir/index.txt
serial = $dir/serial
new_certs_dir = $dir
certificate = other-ca.pem
private_key = other-ca.key
default_md = sha256
default_days = 30
policy = anything
unique_subject = no
copy_extensions = copy
[ anything ]
commonName = supplied
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = unused
[ v3_ca ]
basicConstraints = critical,CA:true
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[ server ]
basicConstraints = CA:false
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
[ client ]
basicConstraints = CA:false
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
CNF

ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
rsa() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null; }

# name key subject ca-section extensions [extra ca args] [extra req args]
sign() {
	name=$1 section=$2 ext=$3 subj=$4
	shift 4
	openssl req -new -config ca.cnf -key "$name.key" -subj "$subj" \
	    ${SAN:+-addext "subjectAltName=$SAN"} -out "$name.csr" 2>/dev/null
	openssl ca -batch -config ca.cnf -name "$section" -extensions "$ext" \
	    -extfile ca.cnf -in "$name.csr" -out "$name.pem" -notext "$@" \
	    2>/dev/null
	rm -f "$name.csr"
}

for c in ca other-ca; do
	ec $c.key
	openssl req -new -x509 -config ca.cnf -key $c.key -days 30 \
	    -subj "/CN=gopro test $c" -extensions v3_ca -out $c.pem 2>/dev/null
done

ec server.key
SAN="DNS:localhost,IP:127.0.0.1" sign server this server /CN=localhost
rsa server-rsa.key
SAN="DNS:localhost,IP:127.0.0.1" sign server-rsa this server /CN=localhost
ec client.key
SAN="DNS:device-1.example,email:device-1@example.com" \
    sign client this client /CN=device-1
ec expired.key
SAN= sign expired this client /CN=expired-device \
    -startdate 20190101000000Z -enddate 20200101000000Z
ec revoked.key
SAN= sign revoked this client /CN=revoked-device
openssl ca -config ca.cnf -name this -revoke revoked.pem 2>/dev/null
openssl ca -config ca.cnf -name this -gencrl -out crl.pem 2>/dev/null
ec other.key
SAN= sign other other client /CN=other-device
chmod 600 ./*.key
