package masking

import "math"

// metersPerDegree is the length of one degree of latitude (and of longitude
// on the equator) on a sphere of the IUGG mean Earth radius, 6,371,008.8 m.
const metersPerDegree = math.Pi * 6_371_008.8 / 180

// GeneraliseLatLon snaps a WGS84 coordinate to the centre of its cell on a
// grid whose cells are at least meters tall and wide, and rounds the result
// so it shows no more precision than the cell has.
//
// The grid divides latitude into equal bands of at least meters (180 degrees
// split into a whole number of bands), and each band into equal longitude
// cells whose width is at least meters at the band's poleward edge, where a
// degree of longitude is shortest (360 degrees split into a whole number of
// cells, so the grid wraps at the antimeridian). The longitude grid depends
// only on the band, never on the point's own latitude, so the output reveals
// the cell and nothing more. Near the poles a band is one cell.
//
// Latitude is clamped to [-90, 90] and longitude wrapped to [-180, 180).
// Meters below 1 count as 1. A NaN or infinite input, or meters not > 0,
// returns NaN, NaN: no information rather than a guess.
func GeneraliseLatLon(lat, lon, meters float64) (float64, float64) {
	if !(meters > 0) || math.IsInf(meters, 0) ||
		math.IsNaN(lat) || math.IsInf(lat, 0) || math.IsNaN(lon) || math.IsInf(lon, 0) {
		return math.NaN(), math.NaN()
	}
	lat = min(max(lat, -90), 90)
	meters = max(meters, 1)

	nLat := max(math.Floor(180/(meters/metersPerDegree)), 1)
	dLat := 180 / nLat
	i := min(math.Floor((lat+90)/dLat), nLat-1)
	south := -90 + i*dLat
	north := south + dLat
	cLat := south + dLat/2

	poleward := max(math.Abs(south), math.Abs(north))
	cells := math.Floor(360 * metersPerDegree * math.Cos(poleward*math.Pi/180) / meters)
	nLon := max(cells, 1)
	dLon := 360 / nLon
	lon += 180 // to [0, 360)
	if lon < 0 || lon >= 360 {
		lon = math.Mod(lon, 360)
		if lon < 0 {
			lon += 360
		}
	}
	j := math.Floor(lon / dLon)
	if j >= nLon {
		j = 0
	}
	cLon := -180 + (j+0.5)*dLon

	return roundToCell(cLat, dLat), roundToCell(cLon, dLon)
}

// roundToCell rounds a cell centre to the fewest decimals whose step is at
// most a tenth of the cell: the centre stays well inside its cell, and
// trailing digits do not suggest a precision the value does not have.
func roundToCell(x, cell float64) float64 {
	dec := 0 // the smallest with 10^-dec <= cell/10, at most 15
	for dec < len(pow10f)-1 && pow10f[dec]*cell < 10 {
		dec++
	}
	p := pow10f[dec]
	y := math.Round(x*p) / p
	if y == 0 {
		y = 0 // no -0
	}
	return y
}
