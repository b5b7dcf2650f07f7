package kafkaproxy

import (
	"fmt"
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Request keys the connection logic refers to by name.
const (
	apiVersionsKey      int16 = 18
	saslHandshakeKey    int16 = 17
	saslAuthenticateKey int16 = 36
)

// api is one request key the proxy handles: the versions it parses and
// whether ApiVersions advertises it. Keys handled but not advertised are
// answered (with an authorization error) when a client sends them anyway.
type api struct {
	key       int16
	min, max  int16
	advertise bool
	handle    func(*conn, kmsg.Request) (kmsg.Response, error)
}

var apis = map[int16]*api{}

// register adds a handler for key; each API file registers itself in init.
func register[R kmsg.Request](key, min, max int16, advertise bool, h func(*conn, R) (kmsg.Response, error)) {
	req := kmsg.RequestForKey(key)
	if req == nil || max > req.MaxVersion() || min < 0 || min > max {
		panic(fmt.Sprintf("kafkaproxy: bad registration of key %d versions %d-%d", key, min, max))
	}
	if _, ok := req.(R); !ok {
		panic(fmt.Sprintf("kafkaproxy: key %d registered with the wrong request type", key))
	}
	apis[key] = &api{key: key, min: min, max: max, advertise: advertise, handle: func(c *conn, r kmsg.Request) (kmsg.Response, error) {
		return h(c, r.(R))
	}}
}

func lookupAPI(key int16) *api { return apis[key] }

// advertised returns the ApiVersions entries, sorted by key.
func advertised() []kmsg.ApiVersionsResponseApiKey {
	var out []kmsg.ApiVersionsResponseApiKey
	for _, a := range apis {
		if !a.advertise {
			continue
		}
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey, k.MinVersion, k.MaxVersion = a.key, a.min, a.max
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ApiKey < out[j].ApiKey })
	return out
}
