package localapi

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestCheckAddress(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:10550": true, "localhost:10350": true, "[::1]:1": true, "127.0.0.1:0": true,
		"0.0.0.0:10550": false, "10.0.0.5:1": false, "example.com:1": false, "nohost": false,
	} {
		if err := CheckAddress("api", addr); (err == nil) != ok {
			t.Errorf("CheckAddress(%q) = %v, want ok=%v", addr, err, ok)
		}
	}
}

func TestHostOnly(t *testing.T) {
	h := HostOnly(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	for host, want := range map[string]int{
		"127.0.0.1:10550": http.StatusOK, "localhost": http.StatusOK, "[::1]:10550": http.StatusOK,
		"attacker.example:10550": http.StatusForbidden, "10.0.0.5": http.StatusForbidden,
	} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Host = host
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("Host %s: %d, want %d", host, rec.Code, want)
		}
	}
}
