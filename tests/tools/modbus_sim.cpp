// A Modbus TCP device for the tests, on libmodbus's own server side:
// 100 coils, discrete inputs, holding and input registers on
// 127.0.0.1:PORT, any number of clients at once.
//
// It reads commands on stdin, one per line:
//   input ADDR VALUE      set an input register
//   holding ADDR VALUE    set a holding register
//   coil ADDR 0|1         set a coil
// and prints every write a client makes ("write holding 1 250"), flushed,
// so a test can see what a mapper wrote. It exits when stdin closes.
// usage: kedge_modbus_sim PORT
#include <modbus.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s PORT\n", argv[0]);
    return 2;
  }
  int port = std::atoi(argv[1]);
  modbus_t* ctx = modbus_new_tcp("127.0.0.1", port);
  modbus_mapping_t* map = modbus_mapping_new(100, 100, 100, 100);
  if (!ctx || !map) {
    std::fprintf(stderr, "cannot set up: %s\n", modbus_strerror(errno));
    return 1;
  }
  int server = modbus_tcp_listen(ctx, 16);
  if (server < 0) {
    std::fprintf(stderr, "cannot listen on %d: %s\n", port, modbus_strerror(errno));
    return 1;
  }
  std::printf("listening on 127.0.0.1:%d\n", port);
  std::fflush(stdout);
  fd_set all;
  FD_ZERO(&all);
  FD_SET(server, &all);
  FD_SET(0, &all);
  int maxfd = server;
  uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];
  std::string line;
  for (;;) {
    fd_set ready = all;
    if (select(maxfd + 1, &ready, nullptr, nullptr, nullptr) < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    for (int fd = 0; fd <= maxfd; ++fd) {
      if (!FD_ISSET(fd, &ready)) continue;
      if (fd == 0) {
        char buf[256];
        ssize_t n = read(0, buf, sizeof buf);
        if (n <= 0) return 0;  // stdin closed: the test is done with it
        line.append(buf, static_cast<size_t>(n));
        size_t nl;
        while ((nl = line.find('\n')) != std::string::npos) {
          std::istringstream in(line.substr(0, nl));
          line.erase(0, nl + 1);
          std::string what;
          int addr = -1;
          long value = 0;
          in >> what >> addr >> value;
          if (addr < 0 || addr >= 100) continue;
          if (what == "input") map->tab_input_registers[addr] = static_cast<uint16_t>(value);
          if (what == "holding") map->tab_registers[addr] = static_cast<uint16_t>(value);
          if (what == "coil") map->tab_bits[addr] = value ? 1 : 0;
        }
      } else if (fd == server) {
        int client = accept(server, nullptr, nullptr);
        if (client < 0) continue;
        FD_SET(client, &all);
        if (client > maxfd) maxfd = client;
      } else {
        modbus_set_socket(ctx, fd);
        int rc = modbus_receive(ctx, query);
        if (rc > 0) {
          modbus_reply(ctx, query, rc, map);
          int header = modbus_get_header_length(ctx);
          int function = query[header];
          int addr = (query[header + 1] << 8) | query[header + 2];
          if ((function == 0x06 || function == 0x10) && addr < 100)
            std::printf("write holding %d %d\n", addr, map->tab_registers[addr]);
          if ((function == 0x05 || function == 0x0F) && addr < 100)
            std::printf("write coil %d %d\n", addr, map->tab_bits[addr]);
          std::fflush(stdout);
        } else if (rc == -1) {
          close(fd);
          FD_CLR(fd, &all);
        }
      }
    }
  }
}
