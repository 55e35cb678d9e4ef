#!/usr/bin/env python3
"""Derive the IMI scoreboard's map of Europe from Natural Earth data.

Input:  countries-50m.json from the npm package world-atlas 2.x (TopoJSON of
        Natural Earth 1:50m admin 0 countries; Natural Earth is public domain,
        the world-atlas packaging is ISC-licensed).
Output: a small JSON file with one SVG path per EEA country (30 of them, keyed
        by IMI node id), a label point for each, a marker circle for the ones
        too small to see, and grey "context" paths for the neighbours.

Usage:
    python3 scripts/derive-europe-map.py PATH/TO/countries-50m.json \
        crates/scoreboard/assets/europe-map.json [--world-atlas-version 2.0.2]

Standard library only (Python 3.11).  The steps:

1. Decode the TopoJSON arcs (quantized, delta-encoded, with transform).
2. Keep only the European parts of the EEA countries (polygons whose centroid
   lies in lon -25..45, lat 34..72; a few named remote islands are dropped as
   well), dissolving Åland into Finland and Northern Cyprus into Cyprus.
3. Project with a spherical Lambert azimuthal equal-area projection centred
   on 10°E 52°N (the centre of ETRS89-LAEA / EPSG:3035, the EU's own map
   projection), scaled so the EEA fits a viewBox about 1000 px wide.
4. Simplify every TopoJSON arc once with Douglas–Peucker (in pixels), so that
   neighbouring countries still share exactly the same border points.
5. Assemble rings, clip them to the viewBox (Sutherland–Hodgman), drop slivers
   and islands below a minimum area, normalise the winding (outer rings
   clockwise on screen, holes anticlockwise: both fill rules work), round to
   one decimal and write the paths.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import os
import sys

# ---------------------------------------------------------------------------
# What goes on the map

# IMI node id -> (ISO 3166-1 numeric, Natural Earth name, display name)
EEA = {
    "AT": ("040", "Austria", "Austria"),
    "BE": ("056", "Belgium", "Belgium"),
    "BG": ("100", "Bulgaria", "Bulgaria"),
    "HR": ("191", "Croatia", "Croatia"),
    "CY": ("196", "Cyprus", "Cyprus"),
    "CZ": ("203", "Czechia", "Czechia"),
    "DK": ("208", "Denmark", "Denmark"),
    "EE": ("233", "Estonia", "Estonia"),
    "FI": ("246", "Finland", "Finland"),
    "FR": ("250", "France", "France"),
    "DE": ("276", "Germany", "Germany"),
    "EL": ("300", "Greece", "Greece"),
    "HU": ("348", "Hungary", "Hungary"),
    "IS": ("352", "Iceland", "Iceland"),
    "IE": ("372", "Ireland", "Ireland"),
    "IT": ("380", "Italy", "Italy"),
    "LV": ("428", "Latvia", "Latvia"),
    "LI": ("438", "Liechtenstein", "Liechtenstein"),
    "LT": ("440", "Lithuania", "Lithuania"),
    "LU": ("442", "Luxembourg", "Luxembourg"),
    "MT": ("470", "Malta", "Malta"),
    "NL": ("528", "Netherlands", "Netherlands"),
    "NO": ("578", "Norway", "Norway"),
    "PL": ("616", "Poland", "Poland"),
    "PT": ("620", "Portugal", "Portugal"),
    "RO": ("642", "Romania", "Romania"),
    "SK": ("703", "Slovakia", "Slovakia"),
    "SI": ("705", "Slovenia", "Slovenia"),
    "ES": ("724", "Spain", "Spain"),
    "SE": ("752", "Sweden", "Sweden"),
}

# Natural Earth features dissolved into an EEA country (matched by name).
# Åland is an autonomous region of Finland.  Northern Cyprus is drawn as part
# of Cyprus, as the EU does (the whole island joined the EU in 2004; only the
# application of the acquis is suspended in the north).
MERGE_INTO = {"Åland": "FI", "N. Cyprus": "CY"}

# The European view, in degrees: an EEA polygon is kept when its centroid
# lies inside this box (drops French Guiana, Réunion, Guadeloupe, Martinique,
# Mayotte, the Caribbean Netherlands, the Canary Islands, Madeira, Svalbard,
# Bouvet Island ...).
EUROPE_BOX = (-25.0, 34.0, 45.0, 72.0)  # lon_min, lat_min, lon_max, lat_max

# Further remote EEA islands dropped although inside the box: (code, box).
DROP_PARTS = [
    ("PT", (-32.0, 36.0, -20.0, 40.5)),  # the Azores
    ("NO", (-10.0, 70.0, -7.0, 72.0)),   # Jan Mayen
]

# Context features are taken from this generous box before projecting (their
# parts are then clipped to the viewBox exactly).
CONTEXT_BOX = (-60.0, 20.0, 80.0, 90.0)

# Projection: Lambert azimuthal equal-area, centre 10°E 52°N.
CENTRE_LON, CENTRE_LAT = 10.0, 52.0

WIDTH = 1000.0      # viewBox width in px
MARGIN = 20.0       # px around the EEA's extent
TOLERANCE = 0.45    # Douglas–Peucker tolerance in px
MIN_AREA = 1.5      # px²: smaller islands and holes are dropped
MIN_BOX = 6.0       # px: a country whose bbox is smaller gets a marker ...
MIN_FILL = 50.0     # px²: ... and so does one whose land area is smaller
MARKER_R = 6.0      # px: marker radius


# ---------------------------------------------------------------------------
# TopoJSON

def decode_arcs(topo):
    """Absolute [lon, lat] points of each arc, plus their quantized ints."""
    t = topo.get("transform")
    arcs_q = []
    arcs = []
    for arc in topo["arcs"]:
        x = y = 0
        q = []
        for p in arc:
            if t:
                x += p[0]
                y += p[1]
            else:
                x, y = p[0], p[1]
            q.append((x, y))
        arcs_q.append(q)
        if t:
            (sx, sy), (tx, ty) = t["scale"], t["translate"]
            arcs.append([(qx * sx + tx, qy * sy + ty) for qx, qy in q])
        else:
            arcs.append([(float(a), float(b)) for a, b in q])
    return arcs, arcs_q


def polygons_of(geom):
    """List of polygons, each a list of rings of signed arc indices."""
    if geom["type"] == "Polygon":
        return [geom["arcs"]]
    if geom["type"] == "MultiPolygon":
        return list(geom["arcs"])
    return []


def arc_points(arcs, i):
    """Points of arc i; a negative index ~i means the arc reversed."""
    return arcs[i] if i >= 0 else arcs[~i][::-1]


def ring_points(arcs, ring):
    pts = []
    for i in ring:
        a = arc_points(arcs, i)
        pts.extend(a if not pts else a[1:])
    return pts


def signed_area(pts):
    """Shoelace area (positive = anticlockwise with y up / clockwise with y down)."""
    s = 0.0
    n = len(pts)
    for k in range(n):
        x0, y0 = pts[k]
        x1, y1 = pts[(k + 1) % n]
        s += x0 * y1 - x1 * y0
    return s / 2.0


def centroid(pts):
    a = 0.0
    cx = cy = 0.0
    n = len(pts)
    for k in range(n):
        x0, y0 = pts[k]
        x1, y1 = pts[(k + 1) % n]
        c = x0 * y1 - x1 * y0
        a += c
        cx += (x0 + x1) * c
        cy += (y0 + y1) * c
    if abs(a) < 1e-12:
        xs = [p[0] for p in pts]
        ys = [p[1] for p in pts]
        return (sum(xs) / len(xs), sum(ys) / len(ys))
    return (cx / (3 * a), cy / (3 * a))


def in_box(p, box):
    return box[0] <= p[0] <= box[2] and box[1] <= p[1] <= box[3]


def dissolve(polygons, arcs, arcs_q):
    """Merge polygons sharing arcs (like topojson.merge).

    Returns a list of (ring_arc_indices, is_hole).  Arcs used twice within the
    group are interior borders and disappear; the rest are stitched end to
    start into rings, keeping their direction, so outer rings and holes keep
    the orientation they had in the input."""
    # orientation of outer rings in this data set (lon/lat, y up)
    outer_sign = 0.0
    for poly in polygons:
        outer_sign += math.copysign(1.0, signed_area(ring_points(arcs, poly[0])))
    outer_positive = outer_sign >= 0

    count = {}
    for poly in polygons:
        for ring in poly:
            for i in ring:
                count[i if i >= 0 else ~i] = count.get(i if i >= 0 else ~i, 0) + 1
    kept = [i for poly in polygons for ring in poly for i in ring
            if count[i if i >= 0 else ~i] == 1]
    if len(kept) == sum(len(r) for poly in polygons for r in poly):
        # nothing shared: keep the polygons as they are
        out = []
        for poly in polygons:
            out.append((poly[0], False))
            out.extend((r, True) for r in poly[1:])
        return out

    def ends(i):
        q = arcs_q[i] if i >= 0 else arcs_q[~i][::-1]
        return q[0], q[-1]

    by_start = {}
    for i in kept:
        by_start.setdefault(ends(i)[0], []).append(i)
    used = set()
    rings = []
    for i in kept:
        if i in used:
            continue
        ring = [i]
        used.add(i)
        start, end = ends(i)
        while end != start:
            nxt = [j for j in by_start.get(end, []) if j not in used]
            if not nxt:
                raise ValueError("cannot stitch dissolved ring")
            j = nxt[0]
            ring.append(j)
            used.add(j)
            end = ends(j)[1]
        rings.append(ring)
    out = []
    for ring in rings:
        positive = signed_area(ring_points(arcs, ring)) >= 0
        out.append((ring, positive != outer_positive))
    return out


# ---------------------------------------------------------------------------
# Geometry in the projected plane

def laea(lon, lat):
    """Spherical Lambert azimuthal equal-area (unit sphere), y up."""
    l0 = math.radians(CENTRE_LON)
    p0 = math.radians(CENTRE_LAT)
    lam = math.radians(lon) - l0
    phi = math.radians(lat)
    cosc = math.sin(p0) * math.sin(phi) + math.cos(p0) * math.cos(phi) * math.cos(lam)
    k = math.sqrt(2.0 / max(1.0 + cosc, 1e-9))
    return (k * math.cos(phi) * math.sin(lam),
            k * (math.cos(p0) * math.sin(phi) - math.sin(p0) * math.cos(phi) * math.cos(lam)))


def douglas_peucker(pts, tol):
    n = len(pts)
    if n < 3:
        return list(pts)
    keep = [False] * n
    keep[0] = keep[-1] = True
    stack = [(0, n - 1)]
    tol2 = tol * tol
    while stack:
        a, b = stack.pop()
        ax, ay = pts[a]
        bx, by = pts[b]
        dx, dy = bx - ax, by - ay
        den = dx * dx + dy * dy
        best, idx = -1.0, -1
        for k in range(a + 1, b):
            px, py = pts[k]
            if den == 0.0:
                d = (px - ax) ** 2 + (py - ay) ** 2
            else:
                t = ((px - ax) * dx + (py - ay) * dy) / den
                t = 0.0 if t < 0 else 1.0 if t > 1 else t
                d = (px - ax - t * dx) ** 2 + (py - ay - t * dy) ** 2
            if d > best:
                best, idx = d, k
        if best > tol2:
            keep[idx] = True
            stack.append((a, idx))
            stack.append((idx, b))
    return [p for p, k in zip(pts, keep) if k]


def clip_ring(pts, x0, y0, x1, y1):
    """Sutherland–Hodgman clip of a closed ring to a rectangle."""
    def clip(points, inside, cross):
        out = []
        n = len(points)
        for k in range(n):
            cur = points[k]
            prev = points[k - 1]
            if inside(cur):
                if not inside(prev):
                    out.append(cross(prev, cur))
                out.append(cur)
            elif inside(prev):
                out.append(cross(prev, cur))
        return out

    def at_x(x):
        return lambda p, q: (x, p[1] + (q[1] - p[1]) * (x - p[0]) / (q[0] - p[0]))

    def at_y(y):
        return lambda p, q: (p[0] + (q[0] - p[0]) * (y - p[1]) / (q[1] - p[1]), y)

    if all(x0 <= p[0] <= x1 and y0 <= p[1] <= y1 for p in pts):
        return list(pts)
    r = list(pts)
    for inside, cross in (
        (lambda p: p[0] >= x0, at_x(x0)),
        (lambda p: p[0] <= x1, at_x(x1)),
        (lambda p: p[1] >= y0, at_y(y0)),
        (lambda p: p[1] <= y1, at_y(y1)),
    ):
        if not r:
            break
        r = clip(r, inside, cross)
    return r


def point_segment_dist2(px, py, a, b):
    ax, ay = a
    bx, by = b
    dx, dy = bx - ax, by - ay
    den = dx * dx + dy * dy
    t = 0.0 if den == 0 else max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / den))
    return (px - ax - t * dx) ** 2 + (py - ay - t * dy) ** 2


def signed_dist(px, py, ring):
    """Distance from a point to the ring's edge, positive inside."""
    inside = False
    best = math.inf
    n = len(ring)
    for k in range(n):
        a = ring[k]
        b = ring[k - 1]
        if (a[1] > py) != (b[1] > py) and px < (b[0] - a[0]) * (py - a[1]) / (b[1] - a[1]) + a[0]:
            inside = not inside
        best = min(best, point_segment_dist2(px, py, a, b))
    d = math.sqrt(best)
    return d if inside else -d


def polylabel(ring, precision=0.5):
    """Pole of inaccessibility of a ring (Mapbox's polylabel algorithm)."""
    xs = [p[0] for p in ring]
    ys = [p[1] for p in ring]
    minx, maxx, miny, maxy = min(xs), max(xs), min(ys), max(ys)
    w, h = maxx - minx, maxy - miny
    size = min(w, h)
    if size == 0:
        return (minx, miny)
    half = size / 2
    heap = []
    counter = 0

    def push(x, y, hh):
        nonlocal counter
        d = signed_dist(x, y, ring)
        counter += 1
        heapq.heappush(heap, (-(d + hh * math.sqrt(2)), counter, x, y, hh, d))

    x = minx
    while x < maxx:
        y = miny
        while y < maxy:
            push(x + half, y + half, half)
            y += size
        x += size
    cx, cy = centroid(ring)
    best = (signed_dist(cx, cy, ring), cx, cy)
    bx, by = minx + w / 2, miny + h / 2
    d = signed_dist(bx, by, ring)
    if d > best[0]:
        best = (d, bx, by)
    while heap:
        negmax, _, x, y, hh, d = heapq.heappop(heap)
        if d > best[0]:
            best = (d, x, y)
        if -negmax - best[0] <= precision:
            continue
        hh /= 2
        for ox in (-hh, hh):
            for oy in (-hh, hh):
                push(x + ox, y + oy, hh)
    return (best[1], best[2])


def fmt(v):
    s = f"{v:.1f}"
    if s.endswith(".0"):
        s = s[:-2]
    return "0" if s == "-0" else s


def ring_path(ring):
    return "M" + fmt(ring[0][0]) + " " + fmt(ring[0][1]) + "L" + " ".join(
        fmt(x) + " " + fmt(y) for x, y in ring[1:]) + "Z"


def rounded(ring):
    out = []
    for x, y in ring:
        p = (round(x, 1), round(y, 1))
        if not out or out[-1] != p:
            out.append(p)
    while len(out) > 1 and out[0] == out[-1]:
        out.pop()
    return out


# ---------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input", help="world-atlas countries-50m.json")
    ap.add_argument("output", help="europe-map.json to write")
    ap.add_argument("--world-atlas-version",
                    help="version to record (default: read from a package.json beside the input)")
    args = ap.parse_args(argv)

    version = args.world_atlas_version
    if not version:
        pj = os.path.join(os.path.dirname(os.path.abspath(args.input)), "package.json")
        try:
            with open(pj, encoding="utf-8") as f:
                meta = json.load(f)
            if meta.get("name") == "world-atlas":
                version = meta["version"]
        except (OSError, ValueError, KeyError):
            pass
    if not version:
        sys.exit("cannot tell the world-atlas version: pass --world-atlas-version")

    with open(args.input, encoding="utf-8") as f:
        topo = json.load(f)
    arcs, arcs_q = decode_arcs(topo)
    geoms = topo["objects"]["countries"]["geometries"]

    # --- EEA countries: European parts, merged features --------------------
    by_code = {}
    for g in geoms:
        gid = g.get("id")
        name = g.get("properties", {}).get("name")
        code = None
        for c, (iso, ne_name, _) in EEA.items():
            if gid == iso and name == ne_name:
                code = c
        if name in MERGE_INTO:
            code = MERGE_INTO[name]
        if code:
            by_code.setdefault(code, []).extend(polygons_of(g))
    missing = sorted(set(EEA) - set(by_code))
    if missing:
        sys.exit(f"not found in the input: {missing}")

    dropped = {}
    eea_rings = {}  # code -> [(arc ring, is_hole)]
    for code, polys in by_code.items():
        keep = []
        for poly in polys:
            c = centroid(ring_points(arcs, poly[0]))
            remote = not in_box(c, EUROPE_BOX) or any(
                dc == code and in_box(c, box) for dc, box in DROP_PARTS)
            if remote:
                dropped.setdefault(code, []).append((round(c[0], 1), round(c[1], 1)))
            else:
                keep.append(poly)
        eea_rings[code] = dissolve(keep, arcs, arcs_q)

    # --- Context features --------------------------------------------------
    eea_names = {v[1] for v in EEA.values()} | set(MERGE_INTO)
    context_rings = []  # (name, [(arc ring, is_hole)])
    for g in geoms:
        name = g.get("properties", {}).get("name")
        if name in eea_names:
            continue
        rings = []
        for poly in polygons_of(g):
            pts = ring_points(arcs, poly[0])
            xs = [p[0] for p in pts]
            ys = [p[1] for p in pts]
            if (max(xs) < CONTEXT_BOX[0] or min(xs) > CONTEXT_BOX[2]
                    or max(ys) < CONTEXT_BOX[1] or min(ys) > CONTEXT_BOX[3]):
                continue
            rings.append((poly[0], False))
            rings.extend((r, True) for r in poly[1:])
        if rings:
            context_rings.append((name, rings))

    # --- Projection and frame ------------------------------------------------
    used = set()
    for rings in list(eea_rings.values()) + [r for _, r in context_rings]:
        for ring, _ in rings:
            used.update(i if i >= 0 else ~i for i in ring)
    proj = {i: [laea(lon, lat) for lon, lat in arcs[i]] for i in used}

    xs, ys = [], []
    for rings in eea_rings.values():
        for ring, hole in rings:
            if not hole:
                for i in ring:
                    for x, y in proj[i if i >= 0 else ~i]:
                        xs.append(x)
                        ys.append(y)
    minx, maxx, miny, maxy = min(xs), max(xs), min(ys), max(ys)
    scale = (WIDTH - 2 * MARGIN) / (maxx - minx)
    height = math.ceil((maxy - miny) * scale + 2 * MARGIN)

    def to_px(p):  # y flipped: north is up on screen
        return ((p[0] - minx) * scale + MARGIN, (maxy - p[1]) * scale + MARGIN)

    simp = {i: douglas_peucker([to_px(p) for p in pts], TOLERANCE) for i, pts in proj.items()}

    def build(rings, keep_largest):
        """Pixel rings: clipped, filtered, oriented, rounded."""
        out = []
        for ring, hole in rings:
            pts = ring_points(simp, ring)
            if len(pts) > 1 and pts[0] == pts[-1]:
                pts = pts[:-1]
            pts = clip_ring(pts, 0.0, 0.0, WIDTH, float(height))
            pts = rounded(pts)
            if len(pts) < 3:
                continue
            a = signed_area(pts)
            out.append([pts, hole, abs(a)])
        if not out:
            return []
        largest = max((r for r in out if not r[1]), key=lambda r: r[2], default=None)
        res = []
        for r in out:
            if r[2] < MIN_AREA and not (keep_largest and r is largest):
                continue
            pts, hole = r[0], r[1]
            # y down: positive shoelace area = clockwise on screen
            if (signed_area(pts) > 0) == hole:
                pts = pts[::-1]
            res.append((pts, hole))
        return res

    countries = []
    for code in sorted(EEA, key=lambda c: EEA[c][2]):
        rings = build(eea_rings[code], keep_largest=True)
        outers = [r for r, hole in rings if not hole]
        allpts = [p for r in outers for p in r]
        bx0 = min(p[0] for p in allpts)
        bx1 = max(p[0] for p in allpts)
        by0 = min(p[1] for p in allpts)
        by1 = max(p[1] for p in allpts)
        main_ring = max(outers, key=lambda r: abs(signed_area(r)))
        entry = {
            "code": code,
            "name": EEA[code][2],
            "path": "".join(ring_path(r) for r, _ in rings),
        }
        fill = sum(abs(signed_area(r)) for r, hole in rings if not hole) - sum(
            abs(signed_area(r)) for r, hole in rings if hole)
        if max(bx1 - bx0, by1 - by0) < MIN_BOX or fill < MIN_FILL:
            # centre on the main island (Malta rather than Malta+Gozo)
            mx = [p[0] for p in main_ring]
            my = [p[1] for p in main_ring]
            cx, cy = (min(mx) + max(mx)) / 2, (min(my) + max(my)) / 2
            entry["label"] = [round(cx, 1), round(cy, 1)]
            entry["marker"] = [round(cx, 1), round(cy, 1), MARKER_R]
        else:
            lx, ly = polylabel(main_ring)
            entry["label"] = [round(lx, 1), round(ly, 1)]
        countries.append(entry)

    context = []
    for name, rings in sorted(context_rings, key=lambda t: t[0]):
        built = build(rings, keep_largest=False)
        if any(not hole for _, hole in built):
            context.append({"name": name, "path": "".join(ring_path(r) for r, _ in built)})

    out = {
        "source": ("Natural Earth 1:50m admin 0 countries (public domain), via the npm "
                   f"package world-atlas@{version} (ISC); derived by scripts/derive-europe-map.py"),
        "viewBox": f"0 0 {fmt(WIDTH)} {height}",
        "countries": countries,
        "context": context,
    }
    text = json.dumps(out, ensure_ascii=False, separators=(",", ":"))
    # one country per line keeps diffs readable
    text = (text.replace(',"countries":[{', ',\n"countries":[\n{')
                .replace(',"context":[{', ',\n"context":[\n{')
                .replace('},{"code"', '},\n{"code"')
                .replace('},{"name"', '},\n{"name"'))
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(text + "\n")

    print(f"wrote {args.output}: {len(text) + 1} bytes, viewBox {out['viewBox']}, "
          f"{len(countries)} countries, {len(context)} context features", file=sys.stderr)
    for code, cs in sorted(dropped.items()):
        print(f"  dropped {len(cs)} remote part(s) of {code} (centroids {cs})", file=sys.stderr)
    for c in countries:
        if "marker" in c:
            print(f"  marker for {c['code']} at {c['marker']}", file=sys.stderr)
    print("  context: " + ", ".join(c["name"] for c in context), file=sys.stderr)


if __name__ == "__main__":
    main()
