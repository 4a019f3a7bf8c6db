#!/usr/bin/env bash
# Makes a private CA and the NATS servers' TLS certificate for compose.yaml:
#
#   bash tls/make-certs.sh [HOST...]
#
# HOST: every further name or IP address devices reach NATS at (PUBLIC_NATS_ADDRESS's host, e.g.
# nats.example.com or 203.0.113.7); `nats` (the compose network), localhost and 127.0.0.1 are
# always in. It writes
#   tls/ca.key        the CA's private key: it signs certificates; keep it offline, never mounted
#   tls/ca/ca.crt     the CA certificate: services and agents verify NATS with it
#                     (EDGEFORGE_NATS_CA_FILE; a real device: edgeforge agent --nats-ca-file)
#   tls/nats/tls.crt  the NATS servers' certificate, and tls/nats/tls.key its key
# and refuses to overwrite an existing CA. With a certificate from your own or a public CA, put
# tls.crt and tls.key in tls/nats/ and its CA's certificate in tls/ca/ca.crt instead.
set -euo pipefail
cd "$(dirname "$0")"
if [[ -e ca.key || -e ca/ca.crt ]]; then
  echo "tls/ca.key or tls/ca/ca.crt exists already: delete both to make a new CA" >&2
  exit 1
fi
command -v openssl >/dev/null || { echo "make-certs.sh needs openssl" >&2; exit 1; }
mkdir -p ca nats
san="DNS:nats,DNS:localhost,IP:127.0.0.1"
for host in "$@"; do
  if [[ $host =~ ^[0-9.]+$ || $host == *:* ]]; then san+=",IP:$host"; else san+=",DNS:$host"; fi
done
key=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
(
  umask 077
  openssl req -x509 "${key[@]}" -keyout ca.key -out ca/ca.crt -days 3650 \
    -subj "/CN=edgeforge compose CA" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  openssl req "${key[@]}" -keyout nats/tls.key -out nats/tls.csr -subj "/CN=nats" 2>/dev/null
)
printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$san" >nats/tls.ext
openssl x509 -req -in nats/tls.csr -CA ca/ca.crt -CAkey ca.key -CAcreateserial -days 825 \
  -extfile nats/tls.ext -out nats/tls.crt 2>/dev/null
rm -f nats/tls.csr nats/tls.ext ca/ca.srl
# The certificates are public; the NATS containers run as root and read the key as it is (0600).
chmod 0644 ca/ca.crt nats/tls.crt
echo "tls/nats/tls.crt for ${san//,/ }, signed by tls/ca/ca.crt"
