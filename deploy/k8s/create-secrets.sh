#!/usr/bin/env sh
# The Secrets the manifests mount, from the files deploy/secrets/init.sh makes (run it first), in
# namespace infergate (created if missing). Run again after rotating a file: each Secret is
# replaced in place and the gateways take a new certificate without a restart. With cert-manager,
# let a Certificate write infergate-tls instead (a kubernetes.io/tls Secret of that name).
#
#   infergate-admin-token  key `token`            the gateways' --admin-token-file
#   infergate-tls          tls.crt, tls.key        the gateways' --tls-cert / --tls-key
#   infergate-api-key      key `key`              stored in Redis by the infergate-api-key Job
#   infergate-ca           key `ca.crt`           the CA of infergate-tls, for clients in the cluster (the batch Job)
set -eu
dir="$(cd "$(dirname "$0")/../secrets" && pwd)"
for f in admin.token api.key tls.crt tls.key ca.pem; do
  [ -s "$dir/$f" ] || { echo "missing $dir/$f: run sh deploy/secrets/init.sh first" >&2; exit 1; }
done
kubectl create namespace infergate --dry-run=client -o yaml | kubectl apply -f -
kubectl -n infergate create secret generic infergate-admin-token --from-file=token="$dir/admin.token" \
  --dry-run=client -o yaml | kubectl apply -f -
kubectl -n infergate create secret tls infergate-tls --cert="$dir/tls.crt" --key="$dir/tls.key" \
  --dry-run=client -o yaml | kubectl apply -f -
kubectl -n infergate create secret generic infergate-api-key --from-file=key="$dir/api.key" \
  --dry-run=client -o yaml | kubectl apply -f -
kubectl -n infergate create secret generic infergate-ca --from-file=ca.crt="$dir/ca.pem" \
  --dry-run=client -o yaml | kubectl apply -f -
