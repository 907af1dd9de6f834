#!/usr/bin/env bash
# make_certs.sh DIR: the certificates of the clients' TLS tests, made at test
# time with the openssl command (no key is ever committed):
#   ca.pem ca.key          the test CA
#   srv.pem srv.key        the server: CN localhost, SAN DNS:localhost and
#                          IP:127.0.0.1, signed by the CA
#   cli.pem cli.key        a client certificate (CN alice) signed by the CA
#   other.pem other.key    another CA (and a self-signed client certificate of it)
#   expired.pem            the server's key in a certificate that expired in 2020
set -eu
d=$1
cd "$d"
q() { "$@" >/dev/null 2>&1 || { echo "make_certs: $* failed" >&2; "$@"; exit 1; }; }
q openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=rcstore-test-ca \
  -keyout ca.key -out ca.pem
q openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=other-ca \
  -keyout other.key -out other.pem
q openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout srv.key -out srv.csr
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >srv.ext
q openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
  -extfile srv.ext -out srv.pem
q openssl req -newkey rsa:2048 -nodes -subj /CN=alice -keyout cli.key -out cli.csr
q openssl x509 -req -in cli.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -out cli.pem
# openssl x509 (3.0) cannot backdate: openssl ca can, with a minimal setup.
mkdir -p ca.d
: >ca.d/index.txt
echo 1000 >ca.d/serial
cat >ca.cnf <<EOF
[ca]
default_ca = d
[d]
database = ca.d/index.txt
new_certs_dir = ca.d
serial = ca.d/serial
default_md = sha256
policy = p
copy_extensions = none
[p]
commonName = supplied
EOF
q openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -in srv.csr -out expired.pem \
  -startdate 20200101000000Z -enddate 20200102000000Z -extfile srv.ext -notext
chmod 600 ./*.key
