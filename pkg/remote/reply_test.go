package remote

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReadReply(t *testing.T) {
	tests := []struct {
		name, in string
		code     int
		text     string
		err      error
	}{
		{"simple", "250 ok\r\n", 250, "250 ok\n", nil},
		{"multi", "250-a\r\n250-b\r\n250 c\r\nNEXT", 250, "250-a\n250-b\n250 c\n", nil},
		{"lf only", "550 no\n", 550, "550 no\n", nil},
		{"nul", "421 a\x00b\r\n", 421, "421 a?b\n", nil},
		{"short", "25\r\n", CodeMalformed, "25\n", nil},
		{"garbage", "\x01\x02zz\r\n", CodeMalformed, "\x01\x02zz\n", nil},
		{"code only", "354\r\n", 354, "354\n", nil},
		{"eof mid line", "250 o", 0, "", io.ErrUnexpectedEOF},
		{"eof mid reply", "250-o\r\n", 0, "", io.ErrUnexpectedEOF},
		{"empty", "", 0, "", io.ErrUnexpectedEOF},
		{"never ends", strings.Repeat("250-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n", 10000), 0, "", errTooLong},
		{"huge line", "250 " + strings.Repeat("y", 10<<20) + "\r\n", 0, "", errTooLong},
	}
	for _, tt := range tests {
		r, err := ReadReply(bufio.NewReader(strings.NewReader(tt.in)))
		if !errors.Is(err, tt.err) || r.Code != tt.code || r.Text != tt.text {
			t.Errorf("%s: got %d %q %v; want %d %q %v", tt.name, r.Code, short(r.Text), err, tt.code, short(tt.text), tt.err)
		}
	}
}

func short(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

func TestReadReplyKeepsMaxText(t *testing.T) {
	in := ""
	for i := 0; i < 200; i++ {
		in += "250-" + strings.Repeat("z", 60) + "\r\n"
	}
	in += "250 end\r\n"
	r, err := ReadReply(bufio.NewReader(strings.NewReader(in)))
	if err != nil || r.Code != 250 {
		t.Fatal(r.Code, err)
	}
	if len(r.Text) != MaxText || !strings.HasSuffix(r.Text, "\n") {
		t.Fatalf("kept %d bytes", len(r.Text))
	}
}

func TestExtensions(t *testing.T) {
	r := Reply{Code: 250, Text: "250-mx.test hi\n250-PIPELINING\n250-8BITMIME\n250-AUTH=LOGIN\n250-auth plain login\n250 STARTTLS\n"}
	ext := r.Extensions()
	for k, v := range map[string]string{"PIPELINING": "", "8BITMIME": "", "AUTH": "plain login", "STARTTLS": ""} {
		if got, ok := ext[k]; !ok || got != v {
			t.Errorf("%s: %q %v", k, got, ok)
		}
	}
	if _, ok := ext["MX.TEST"]; ok {
		t.Error("greeting line taken as extension")
	}
}

// FuzzReadReply: any input gives a bounded reply or an error, never a panic.
func FuzzReadReply(f *testing.F) {
	for _, s := range []string{"250 ok\r\n", "250-a\r\n250 b\r\n", "\x00\r\n", "25", "999-\n999 \n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		br := bufio.NewReader(strings.NewReader(string(in)))
		for i := 0; i < 100; i++ {
			r, err := ReadReply(br)
			if err != nil {
				return
			}
			if len(r.Text) > MaxText || r.Code < 0 || r.Code > 999 {
				t.Fatalf("reply %d %q", r.Code, r.Text)
			}
			r.Extensions()
		}
	})
}
