package smtpd

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// multiRoot is a tree with the real qmail-queue (built from cmd/) and an
// empty queue, for the connection's qmail-queue -m.
func multiRoot(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds cmd/qmail-queue; skipped under -short")
	}
	root := testRoot(t, nil)
	dirs := []string{"bin", "queue/pid", "queue/intd", "queue/todo", "queue/lock"}
	for i := 0; i < 23; i++ {
		dirs = append(dirs, "queue/mess/"+strconv.Itoa(i))
	}
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command("go", "build", "-o", filepath.Join(root, "bin/qmail-queue"),
		"github.com/hqmail/hqmail/cmd/qmail-queue").CombinedOutput()
	if err != nil {
		t.Fatalf("build qmail-queue: %v\n%s", err, out)
	}
	return root
}

// TestConnQueue: parallel connections with several messages each, through
// the real qmail-queue -m, one process per connection (the same qp pid in
// each connection's 250s); a client that goes away inside DATA queues
// nothing and its session still ends its qmail-queue.
func TestConnQueue(t *testing.T) {
	root := multiRoot(t)
	srv := startServer(t, root, Peer{RemoteIP: "192.0.2.7", RemoteHost: "client.example"}, func(c *Config) {
		c.QueueEnv = []string{}
	})
	const conns, msgs = 4, 3
	okRe := regexp.MustCompile(`(?m)^250 ok \d+ qp (\d+)\r$`)
	var wg sync.WaitGroup
	errs := make(chan error, conns+1)
	for c := 0; c < conns; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("tcp", srv.addr)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(60 * time.Second))
			var b strings.Builder
			b.WriteString("HELO client.example\r\n")
			for m := 0; m < msgs; m++ {
				fmt.Fprintf(&b, "MAIL FROM:<a@client.example>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n"+
					"Subject: c%d m%d\r\n\r\nbody\r\n.\r\n", c, m)
			}
			b.WriteString("QUIT\r\n")
			conn.Write([]byte(b.String()))
			var all strings.Builder
			sc := bufio.NewScanner(conn)
			for sc.Scan() {
				all.WriteString(sc.Text() + "\n")
			}
			got := okRe.FindAllStringSubmatch(strings.ReplaceAll(all.String(), "\n", "\r\n"), -1)
			if len(got) != msgs {
				errs <- fmt.Errorf("connection %d: replies\n%s", c, all.String())
				return
			}
			for _, g := range got[1:] {
				if g[1] != got[0][1] {
					errs <- fmt.Errorf("connection %d: qp pids differ: %v", c, got)
				}
			}
		}()
	}
	// A client that stops inside DATA.
	wg.Add(1)
	go func() {
		defer wg.Done()
		conn, err := net.Dial("tcp", srv.addr)
		if err != nil {
			errs <- err
			return
		}
		conn.SetDeadline(time.Now().Add(60 * time.Second))
		conn.Write([]byte("HELO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<u@example.org>\r\nDATA\r\nSubject: cut\r\n\r\npartial"))
		r := bufio.NewReader(conn)
		for {
			l, err := r.ReadString('\n')
			if err != nil || strings.HasPrefix(l, "354") {
				break
			}
		}
		conn.Close()
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	srv.sessionsDone(t, conns+1)
	todo, _ := filepath.Glob(filepath.Join(root, "queue/todo/*"))
	if len(todo) != conns*msgs {
		t.Errorf("%d queued, want %d", len(todo), conns*msgs)
	}
	mess, _ := filepath.Glob(filepath.Join(root, "queue/mess/*/*"))
	pids, _ := filepath.Glob(filepath.Join(root, "queue/pid/*"))
	if len(mess) != len(todo) || len(pids) != 0 {
		t.Errorf("mess %d, todo %d, pid %d: partial files left", len(mess), len(todo), len(pids))
	}
	for _, p := range mess {
		b, _ := os.ReadFile(p)
		if strings.Contains(string(b), "Subject: cut") {
			t.Errorf("the cut message was queued")
		}
	}
}
