#!/usr/bin/env bash
# Builds the imi-node Debian package from a built binary:
#   scripts/deb.sh BINARY OUT_DIR
# writes OUT_DIR/imi-node_<version>_<arch>.deb and prints its path. `make deb` passes the
# release binary; the packaging test passes the binary it has (the layout is the same).
#
# The package: /usr/bin/imi-node; the systemd unit (Type=notify, watchdog, a dedicated
# user, StateDirectory, sandboxing); /etc/imi-node/node.toml (a conffile: an upgrade keeps
# the operator's edits); the catalogue, vocabularies and directory seed under
# /usr/share/imi-node; the operator's docs under /usr/share/doc/imi-node. Data lives in
# /var/lib/imi-node and is deleted only by `dpkg --purge`.
set -euo pipefail
bin="${1:?usage: scripts/deb.sh BINARY OUT_DIR}"
out="${2:?usage: scripts/deb.sh BINARY OUT_DIR}"
root="$(cd "$(dirname "$0")/.." && pwd)"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n1)"
arch="$(dpkg --print-architecture)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
pkg="$work/imi-node"

install -D -m 0755 "$bin" "$pkg/usr/bin/imi-node"
install -D -m 0644 "$root/packaging/deb/imi-node.service" "$pkg/lib/systemd/system/imi-node.service"
install -D -m 0640 "$root/packaging/deb/node.toml" "$pkg/etc/imi-node/node.toml"
install -d -m 0755 "$pkg/usr/share/imi-node"
cp -r "$root/configs/catalogue" "$root/configs/vocabularies" "$root/configs/directory" "$pkg/usr/share/imi-node/"
install -D -m 0644 "$root/configs/grafana/imi-node.json" "$pkg/usr/share/imi-node/grafana/imi-node.json"
find "$pkg/usr/share/imi-node" -name README.md -delete
for doc in operations.md configuration.md evidence-bundle.md; do
    install -D -m 0644 "$root/docs/$doc" "$pkg/usr/share/doc/imi-node/$doc"
done
install -m 0644 "$root/configs/node.example.toml" "$pkg/usr/share/doc/imi-node/node.example.toml"
chmod -R u=rwX,go=rX "$pkg/usr/share"

install -d -m 0755 "$pkg/DEBIAN"
for script in postinst prerm postrm; do
    install -m 0755 "$root/packaging/deb/$script" "$pkg/DEBIAN/$script"
done
echo /etc/imi-node/node.toml > "$pkg/DEBIAN/conffiles"
size="$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)"
cat > "$pkg/DEBIAN/control" <<CONTROL
Package: imi-node
Version: $version
Architecture: $arch
Maintainer: IMI federation <imi-federation@invalid.example>
Installed-Size: $size
Depends: adduser, libc6, libstdc++6, libgcc-s1
Section: net
Priority: optional
Homepage: https://imi-federation.invalid/
Description: national node of the federated Internal Market Information System
 One Member State's (or the Commission's) node of the IMI federation: signed,
 encrypted messaging with the other members over libp2p, requests, notifications,
 alerts, registers, the authority directory, auditable trails, the authorities'
 web application and HTTPS API. Runs as the imi-node systemd service.
CONTROL

mkdir -p "$out"
deb="$out/imi-node_${version}_${arch}.deb"
# IMI_DEB_COMPRESSION=none skips compressing (the packaging test, on a debug binary).
dpkg-deb --root-owner-group -Z"${IMI_DEB_COMPRESSION:-xz}" --build "$pkg" "$deb" >/dev/null
echo "$deb"
