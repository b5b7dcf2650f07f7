package masking

import (
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// distance is the great-circle distance in metres on the sphere
// GeneraliseLatLon uses.
func distance(lat1, lon1, lat2, lon2 float64) float64 {
	const r = 6_371_008.8
	p1, p2 := lat1*math.Pi/180, lat2*math.Pi/180
	dp, dl := p2-p1, (lon2-lon1)*math.Pi/180
	h := math.Sin(dp/2)*math.Sin(dp/2) + math.Cos(p1)*math.Cos(p2)*math.Sin(dl/2)*math.Sin(dl/2)
	return 2 * r * math.Asin(math.Min(1, math.Sqrt(h)))
}

func decimals(f float64) int {
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if i := strings.IndexByte(s, '.'); i >= 0 {
		return len(s) - i - 1
	}
	return 0
}

func TestGeneraliseLatLonPinned(t *testing.T) {
	// Pinned: the grid is part of the output contract.
	for _, tc := range []struct {
		note             string
		lat, lon, m      float64
		wantLat, wantLon float64
	}{
		{"Berlin, 100 m", 52.520008, 13.404954, 100, 52.52035, 13.4054},
		{"Berlin, 1 km", 52.520008, 13.404954, 1000, 52.5206, 13.4},
		{"Berlin, 5 km", 52.520008, 13.404954, 5000, 52.521, 13.422},
		{"Berlin, 25 km", 52.520008, 13.404954, 25000, 52.54, 13.35},
		{"Sydney, 1 km", -33.8688, 151.2093, 1000, -33.8686, 151.204},
		{"antimeridian east", 0, 180, 1000, 0, -179.9955},
		{"antimeridian west", 0, -180, 1000, 0, -179.9955},
		{"wrapped longitude", 0, 540, 1000, 0, -179.9955},
		{"near the pole, few cells", 89.99, 10, 1000, 89.9865, 30},
		{"latitude clamped", 95, 10, 1000, 89.9955, 0},
		{"hemisphere-sized cell", 52.52, 13.40, 10_000_000, 45, 0},
	} {
		t.Run(tc.note, func(t *testing.T) {
			lat, lon := GeneraliseLatLon(tc.lat, tc.lon, tc.m)
			if lat != tc.wantLat || lon != tc.wantLon {
				t.Fatalf("GeneraliseLatLon(%v, %v, %v) = %v, %v; want %v, %v", tc.lat, tc.lon, tc.m, lat, lon, tc.wantLat, tc.wantLon)
			}
		})
	}
}

func TestGeneraliseLatLonInvalid(t *testing.T) {
	for _, in := range [][3]float64{
		{math.NaN(), 0, 100}, {0, math.NaN(), 100}, {math.Inf(1), 0, 100}, {0, math.Inf(-1), 100},
		{0, 0, 0}, {0, 0, -5}, {0, 0, math.NaN()}, {0, 0, math.Inf(1)},
	} {
		if lat, lon := GeneraliseLatLon(in[0], in[1], in[2]); !math.IsNaN(lat) || !math.IsNaN(lon) {
			t.Errorf("GeneraliseLatLon(%v) = %v, %v; want NaN, NaN", in, lat, lon)
		}
	}
}

// TestGeneraliseLatLonProperties checks, on random points within ±80°
// latitude, that the output is near the input, is its own cell's centre,
// shows no spurious precision, and that distinct cells are at least about
// meters apart: the output reveals the cell and no more.
func TestGeneraliseLatLonProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, m := range []float64{50, 500, 1000, 5000, 20000} {
		for range 2000 {
			lat := rng.Float64()*160 - 80
			lon := rng.Float64()*360 - 180
			glat, glon := GeneraliseLatLon(lat, lon, m)
			if d := distance(lat, lon, glat, glon); d > 2.2*m {
				t.Fatalf("m=%v: (%v, %v) moved %v m to (%v, %v)", m, lat, lon, d, glat, glon)
			}
			if rlat, rlon := GeneraliseLatLon(glat, glon, m); rlat != glat || rlon != glon {
				t.Fatalf("m=%v: centre (%v, %v) is not a fixed point: (%v, %v)", m, glat, glon, rlat, rlon)
			}
			dLat := m / metersPerDegree
			if maxDec := int(math.Ceil(math.Log10(10/dLat))) + 1; decimals(glat) > maxDec {
				t.Fatalf("m=%v: latitude %v shows more than %d decimals", m, glat, maxDec)
			}
		}
		// Neighbouring cells around Berlin: distinct outputs lie at least
		// about a cell apart (rounding moves a centre by at most a tenth).
		var centres [][2]float64
		seen := map[[2]float64]bool{}
		for range 3000 {
			lat := 52.52 + (rng.Float64()-0.5)*8*m/metersPerDegree
			lon := 13.40 + (rng.Float64()-0.5)*8*m/metersPerDegree/0.6
			c0, c1 := GeneraliseLatLon(lat, lon, m)
			c := [2]float64{c0, c1}
			if !seen[c] {
				seen[c] = true
				centres = append(centres, c)
			}
		}
		for i := range centres {
			for j := i + 1; j < len(centres); j++ {
				if d := distance(centres[i][0], centres[i][1], centres[j][0], centres[j][1]); d < 0.8*m {
					t.Fatalf("m=%v: cells %v and %v are %v m apart", m, centres[i], centres[j], d)
				}
			}
		}
	}
}

// TestGeneraliseLatLonBandGrid: the longitude grid depends on the latitude
// band only, so two points of one band with one longitude share the output
// longitude however their latitudes differ.
func TestGeneraliseLatLonBandGrid(t *testing.T) {
	const m = 1000
	lat1, lon1 := GeneraliseLatLon(52.5161, 13.4049, m)
	lat2, lon2 := GeneraliseLatLon(52.5241, 13.4049, m)
	if lat1 != lat2 {
		t.Skipf("test points fell in different bands: %v, %v", lat1, lat2)
	}
	if lon1 != lon2 {
		t.Fatalf("same band, same longitude, different output longitudes %v, %v", lon1, lon2)
	}
}

func TestLocationTransform(t *testing.T) {
	lat := compileJSON(t, `{"op":"generalise-location","meters":1000,"axis":"lat","pair":"lon"}`, nil)
	lon := compileJSON(t, `{"op":"generalise-location","meters":1000,"axis":"lon","pair":"lat"}`, nil)
	wantLat, wantLon := GeneraliseLatLon(52.520008, 13.404954, 1000)
	if got := lat.Float(52.520008); got != wantLat {
		t.Errorf("lat.Float = %v, want %v", got, wantLat)
	}
	for _, tr := range []*Transform{lat, lon} {
		if gl, gn := tr.LatLon(52.520008, 13.404954); gl != wantLat || gn != wantLon {
			t.Errorf("%s.LatLon = %v, %v; want %v, %v", tr, gl, gn, wantLat, wantLon)
		}
	}
	keep := MustCompile(Spec{Op: OpKeep}, nil)
	if gl, gn := keep.LatLon(1.5, 2.5); gl != 1.5 || gn != 2.5 {
		t.Errorf("keep.LatLon = %v, %v", gl, gn)
	}
}
