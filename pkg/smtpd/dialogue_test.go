package smtpd

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestGoldenDialogue plays the client side of testdata/dialogue.golden, a
// transcript written by hand from qmail-smtpd's reply table
// (spec/injection.md §3), and checks that the server's side is exactly the
// transcript's. Consecutive "C:" lines are sent in one write (pipelining);
// the "S:" lines after them are the replies expected, in order. After the
// last reply the server must have closed the connection with nothing more.
func TestGoldenDialogue(t *testing.T) {
	q := useMemQueue(t)
	root := testRoot(t, map[string]string{"databytes": "10000\n"})
	s := startServer(t, root, loopPeer, nil)
	golden, err := os.ReadFile(filepath.Join("testdata", "dialogue.golden"))
	if err != nil {
		t.Fatal(err)
	}
	type step struct {
		send    string
		replies int
	}
	var steps []step
	cur := step{}
	for _, l := range strings.Split(strings.TrimSuffix(string(golden), "\n"), "\n") {
		switch {
		case strings.HasPrefix(l, "C: "):
			if cur.replies > 0 {
				steps = append(steps, cur)
				cur = step{}
			}
			cur.send += l[3:] + "\r\n"
		case strings.HasPrefix(l, "S: "):
			cur.replies++
		default:
			t.Fatalf("golden line %q", l)
		}
	}
	steps = append(steps, cur)

	c := dial(t, s)
	c.conn.SetDeadline(time.Now().Add(20 * time.Second))
	var got strings.Builder
	for _, st := range steps {
		if st.send != "" {
			c.send(st.send)
			for _, l := range strings.SplitAfter(st.send, "\r\n") {
				if l != "" {
					got.WriteString("C: " + strings.TrimSuffix(l, "\r\n") + "\n")
				}
			}
		}
		for i := 0; i < st.replies; i++ {
			l, err := c.r.ReadString('\n')
			if err != nil {
				t.Fatalf("transcript so far:\n%s\nreading reply: %v", got.String(), err)
			}
			if !strings.HasSuffix(l, "\r\n") {
				t.Errorf("reply line without CRLF: %q", l)
			}
			got.WriteString("S: " + strings.TrimSuffix(l, "\r\n") + "\n")
		}
	}
	if rest, err := io.ReadAll(c.r); err != nil || len(rest) != 0 {
		t.Errorf("after QUIT: %q, %v", rest, err)
	}
	if got.String() != string(golden) {
		t.Errorf("transcript:\n%s\nwant:\n%s", got.String(), golden)
	}
	if oks := s.sessionsDone(t, 1); !oks[0] {
		t.Errorf("session after QUIT reported failure")
	}
	msgs := q.all()
	if len(msgs) != 2 {
		t.Fatalf("queued %d messages, want 2", len(msgs))
	}
	want := "Received: from localhost (HELO client.example) (127.0.0.1)\n" +
		"  by mx.example.org with SMTP; 26 Nov 2026 03:50:03 -0000\n" +
		"Subject: golden\n\n.body\n"
	if msgs[0].Msg != want || fmtEnv(msgs[0].Env) != "Fjoe@sender.example Tu@example.org" {
		t.Errorf("first message %q, envelope %s", msgs[0].Msg, fmtEnv(msgs[0].Env))
	}
	if fmtEnv(msgs[1].Env) != "Fa@b.example Tpostmaster" {
		t.Errorf("second envelope %s", fmtEnv(msgs[1].Env))
	}
}
