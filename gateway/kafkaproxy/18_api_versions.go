package kafkaproxy

import (
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ApiVersions: v0-v3.
//
// Lists the request keys and versions the proxy advertises (see each API
// file). A request above v3 is answered, without parsing its body, with a
// v0 response carrying UNSUPPORTED_VERSION and our ApiVersions range
// (KIP-511), so the client retries at v3. The response header is always v0
// (no tagged fields), even for flexible v3: see conn.write.
//
// Allowed before login.

func init() { register(apiVersionsKey, 0, 3, true, (*conn).handleApiVersions) }

var advertisedOnce = sync.OnceValue(advertised)

func (c *conn) handleApiVersions(req *kmsg.ApiVersionsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
	resp.ApiKeys = advertisedOnce()
	resp.ThrottleMillis = 0
	return resp, nil
}

func unsupportedAPIVersions(a *api) kmsg.Response {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 0
	resp.ErrorCode = kerr.UnsupportedVersion.Code
	k := kmsg.NewApiVersionsResponseApiKey()
	k.ApiKey, k.MinVersion, k.MaxVersion = a.key, a.min, a.max
	resp.ApiKeys = []kmsg.ApiVersionsResponseApiKey{k}
	return resp
}
