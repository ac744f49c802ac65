#!/bin/bash
# Start a throw-away single-node Ceph RADOS Gateway (S3 API) for tests and demos.
#
#   scripts/rgw-start.sh [STATE_DIR]     (default: a new mktemp -d directory)
#
# Environment: RGW_PORT (default: a free port), RGW_ACCESS_KEY, RGW_SECRET_KEY,
# RGW_WATCH_PID (stop the gateway when that process ends, e.g. a test runner killed mid-run).
# Needs: apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw ceph-common
#
# Everything lives in STATE_DIR (memstore OSD: data in RAM, 1 GiB cap); monitor and
# gateway listen on free ports on 127.0.0.1 only, so several clusters can run side by side.
# On success it writes STATE_DIR/rgw.env (SOHOA_S3_* variables, sourceable) and prints
# the endpoint. Stop with scripts/rgw-stop.sh STATE_DIR.
set -euo pipefail

for tool in ceph-mon ceph-osd radosgw radosgw-admin ceph ceph-authtool monmaptool uuidgen curl python3; do
    command -v "$tool" >/dev/null || {
        echo "rgw-start: thiếu công cụ '$tool' (apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw ceph-common uuid-runtime curl)" >&2
        exit 2
    }
done

B=${1:-$(mktemp -d -t sohoa-rgw.XXXXXX)}
B=$(cd "$(dirname "$B")" && pwd)/$(basename "$B")
ACCESS=${RGW_ACCESS_KEY:-SOHOATESTACCESS}
SECRET=${RGW_SECRET_KEY:-sohoa-test-secret-key}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
PORT=${RGW_PORT:-$(free_port)}
MON_V2=$(free_port)
MON_V1=$(free_port)

fail() {
    echo "rgw-start: $1 (nhật ký: $B/log)" >&2
    tail -n 20 "$B"/log/*.out 2>/dev/null >&2 || true
    "$(dirname "$0")/rgw-stop.sh" "$B" --keep >/dev/null 2>&1 || true
    exit 1
}

rm -rf "$B"
mkdir -p "$B"/{run,log,mon,osd/ceph-0,rgw}
FSID=$(uuidgen)
cat > "$B/ceph.conf" <<CONF
[global]
fsid = $FSID
mon_initial_members = a
mon_host = [v2:127.0.0.1:$MON_V2,v1:127.0.0.1:$MON_V1]
public_addr = 127.0.0.1
public_network = 127.0.0.0/8
ms_bind_ipv6 = false
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
osd_crush_chooseleaf_type = 0
mon_max_pg_per_osd = 1000
run_dir = $B/run
admin_socket = $B/run/\$name.asok
log_file = $B/log/\$name.log
keyring = $B/keyring
[mon]
mon_data = $B/mon/\$cluster-\$id
keyring = $B/mon/\$cluster-\$id/keyring
[osd]
osd_data = $B/osd/\$cluster-\$id
keyring = $B/osd/\$cluster-\$id/keyring
osd_objectstore = memstore
memstore_device_bytes = 1073741824
[client.rgw.a]
keyring = $B/rgw/keyring
rgw_data = $B/rgw
rgw_frontends = beast endpoint=127.0.0.1:$PORT
CONF
C=(-c "$B/ceph.conf")

ceph-authtool --create-keyring "$B/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool "$B/keyring" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
monmaptool --create --addv a "[v2:127.0.0.1:$MON_V2,v1:127.0.0.1:$MON_V1]" --fsid "$FSID" "$B/monmap" >/dev/null
ceph-mon "${C[@]}" --mkfs -i a --monmap "$B/monmap" --keyring "$B/keyring" >"$B/log/mon-mkfs.out" 2>&1 || fail "ceph-mon --mkfs thất bại"
cp "$B/keyring" "$B/mon/ceph-a/keyring"

nohup ceph-mon "${C[@]}" -i a -f >"$B/log/mon.out" 2>&1 &
echo $! >"$B/run/mon.pidx"
for _ in $(seq 30); do timeout 5 ceph "${C[@]}" -s >/dev/null 2>&1 && break; sleep 0.5; done
timeout 5 ceph "${C[@]}" -s >/dev/null 2>&1 || fail "ceph-mon không khởi động được"

OSD_UUID=$(uuidgen)
ID=$(timeout 20 ceph "${C[@]}" osd new "$OSD_UUID") || fail "không tạo được OSD"
timeout 20 ceph "${C[@]}" auth get-or-create "osd.$ID" mon 'allow profile osd' osd 'allow *' mgr 'allow profile osd' \
    -o "$B/osd/ceph-$ID/keyring" >/dev/null 2>&1 || fail "không tạo được khóa OSD"
ceph-osd "${C[@]}" -i "$ID" --mkfs --osd-uuid "$OSD_UUID" >"$B/log/osd-mkfs.out" 2>&1 || fail "ceph-osd --mkfs thất bại"
nohup ceph-osd "${C[@]}" -i "$ID" -f >"$B/log/osd.out" 2>&1 &
echo $! >"$B/run/osd.pidx"

timeout 20 ceph "${C[@]}" auth get-or-create client.rgw.a mon 'allow rw' osd 'allow rwx' mgr 'allow rw' \
    -o "$B/rgw/keyring" >/dev/null 2>&1 || fail "không tạo được khóa RGW"
nohup radosgw "${C[@]}" -n client.rgw.a -f >"$B/log/rgw.out" 2>&1 &
echo $! >"$B/run/rgw.pidx"
for _ in $(seq 120); do curl -sf "http://127.0.0.1:$PORT/" >/dev/null && break; sleep 0.5; done
curl -sf "http://127.0.0.1:$PORT/" >/dev/null || fail "radosgw không trả lời trên cổng $PORT"

timeout 60 radosgw-admin "${C[@]}" user create --uid=sohoa-test --display-name=sohoa-test \
    --access-key="$ACCESS" --secret-key="$SECRET" >/dev/null 2>"$B/log/user.out" || fail "không tạo được người dùng S3"

cat > "$B/rgw.env" <<ENV
SOHOA_S3_ENDPOINT=127.0.0.1:$PORT
SOHOA_S3_ACCESS_KEY=$ACCESS
SOHOA_S3_SECRET_KEY=$SECRET
SOHOA_S3_SECURE=false
RGW_STATE_DIR=$B
ENV
if [ -n "${RGW_WATCH_PID:-}" ]; then
    STOP="$(cd "$(dirname "$0")" && pwd)/rgw-stop.sh"
    nohup bash -c "while kill -0 $RGW_WATCH_PID 2>/dev/null && [ -d '$B/run' ]; do sleep 2; done; '$STOP' '$B'" \
        >/dev/null 2>&1 &
fi
echo "RGW ready on http://127.0.0.1:$PORT (state: $B; PIDs: $(cat "$B"/run/*.pidx | tr '\n' ' '))"
