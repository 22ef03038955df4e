#!/usr/bin/env sh
# Makes the secrets of deploy/compose.yaml (and, with deploy/k8s/create-secrets.sh, of the
# Kubernetes manifests) in this directory, once: files that exist are kept. Nothing here is
# committed (.gitignore), nothing goes into an image (.dockerignore).
#
#   admin.token              the gateways' admin port bearer token (--admin-token-file)
#   api.key                  an API key for callers (stored in Redis by `infergate keys create --key-file`)
#   ca.pem, tls.crt, tls.key a private CA and the gateways' server certificate (--tls-cert/--tls-key)
#                            for localhost, 127.0.0.1, the compose names and the Kubernetes Service
#   grafana-admin.password   Grafana's admin password
#
# Needs openssl and node (for the key: the same form `infergate keys create` makes).
set -eu
cd "$(dirname "$0")"
umask 077

[ -s admin.token ] || openssl rand -hex 32 > admin.token
[ -s grafana-admin.password ] || openssl rand -hex 16 > grafana-admin.password
[ -s api.key ] || node -e "process.stdout.write('igk_' + require('node:crypto').randomBytes(24).toString('base64url') + '\n')" > api.key

if [ ! -s tls.key ] || [ ! -s tls.crt ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 -subj /CN=infergate-ca \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    -keyout ca-key.pem -out ca.pem 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=infergate \
    -keyout tls.key -out tls.csr 2>/dev/null
  printf '%s\n' \
    'subjectAltName=DNS:localhost,IP:127.0.0.1,DNS:ingress,DNS:gateway-1,DNS:gateway-2,DNS:infergate-gateway,DNS:infergate-gateway.infergate.svc,DNS:infergate-gateway.infergate.svc.cluster.local' \
    'extendedKeyUsage=serverAuth' > tls.ext
  openssl x509 -req -in tls.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 397 -extfile tls.ext \
    -out tls.crt 2>/dev/null
  rm -f tls.csr tls.ext ca.srl
fi

# The containers run as uid 1000, and compose mounts these files as they are: readable for it.
chmod 644 admin.token api.key tls.crt tls.key ca.pem grafana-admin.password
chmod 600 ca-key.pem 2>/dev/null || true
echo "secrets in $(pwd): admin.token api.key ca.pem tls.crt tls.key grafana-admin.password"
