#include "weft/dist/session.hpp"

#include <mpi.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string_view>
#include <string>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "comm.hpp"
#include "weft/dist/collectives.hpp"

namespace weft::dist {

namespace detail {

Comm& comm() {
  static Comm state;
  return state;
}

namespace {
// MPI counts are ints: larger messages go in pieces, each its own request.
constexpr std::size_t kMaxMessageBytes = std::size_t{1} << 30;
}  // namespace

void check(int code, const char* op, const char* call) {
  if (code == MPI_SUCCESS) return;
  std::array<char, MPI_MAX_ERROR_STRING> text{};
  int length = 0;
  MPI_Error_string(code, text.data(), &length);
  comm().failed = true;
  throw Error(fmt::format("weft::dist::{}: {} failed on rank {}: {}", op, call, comm().rank,
                          std::string_view(text.data(), static_cast<std::size_t>(length))));
}

// Posts one message in pieces of at most kMaxMessageBytes, each its own request.
template <class Post>
void post_pieces(std::vector<MPI_Request>& requests, std::vector<int>& peers, char* p, std::size_t bytes, int peer,
                 Post post) {
  do {
    const std::size_t n = std::min(bytes, kMaxMessageBytes);
    requests.push_back(MPI_REQUEST_NULL);
    peers.push_back(peer);
    post(p, static_cast<int>(n), &requests.back());
    p += n;
    bytes -= n;
  } while (bytes > 0);
}

void Exchange::send(const void* data, std::size_t bytes, int peer, int tag) {
  // MPI_Isend reads the buffer only; post_pieces walks it as char*.
  post_pieces(requests_, peers_, const_cast<char*>(static_cast<const char*>(data)), bytes, peer,
              [&](char* p, int n, MPI_Request* r) {
                check(MPI_Isend(p, n, MPI_BYTE, peer, tag, comm().comm, r), op_, "MPI_Isend");
              });
}

void Exchange::recv(void* data, std::size_t bytes, int peer, int tag) {
  post_pieces(requests_, peers_, static_cast<char*>(data), bytes, peer, [&](char* p, int n, MPI_Request* r) {
    check(MPI_Irecv(p, n, MPI_BYTE, peer, tag, comm().comm, r), op_, "MPI_Irecv");
  });
}

void Exchange::wait() {
  Comm& c = comm();
  const auto start = std::chrono::steady_clock::now();
  // Busy polling, as MPI's own collectives wait: each call moves the transfers on (a large message
  // goes in many fragments), and a rank is given a core of its own. Only a rank that has waited a
  // second, for a slower or a stuck peer, polls every millisecond.
  for (;;) {
    int done = 0;
    check(MPI_Testall(static_cast<int>(requests_.size()), requests_.data(), &done, MPI_STATUSES_IGNORE), op_,
          "MPI_Testall");
    if (done) {
      requests_.clear();
      peers_.clear();
      return;
    }
    const auto waited = std::chrono::steady_clock::now() - start;
    if (waited > c.timeout) break;
    if (waited > std::chrono::seconds(1)) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::vector<int> missing;
  for (std::size_t i = 0; i < requests_.size(); ++i) {
    int done = 0;
    MPI_Test(&requests_[i], &done, MPI_STATUS_IGNORE);
    if (!done && std::find(missing.begin(), missing.end(), peers_[i]) == missing.end()) missing.push_back(peers_[i]);
  }
  std::sort(missing.begin(), missing.end());
  c.failed = true;
  throw TimeoutError(fmt::format(
      "weft::dist::{}: rank {} waited {:.0f} s for rank{} {} (of {} ranks), which did not answer: a rank died or "
      "hangs. The job stops; restart it from its last checkpoint (weft-train: --resume)",
      op_, c.rank, std::chrono::duration<double>(c.timeout).count(), missing.size() == 1 ? "" : "s",
      fmt::join(missing, ", "), c.size));
}

std::vector<std::uint32_t> all_gather(std::uint32_t value, const char* op) {
  const Comm& c = comm();
  std::vector<std::uint32_t> all(static_cast<std::size_t>(c.size));
  all[static_cast<std::size_t>(c.rank)] = value;
  Exchange x(op);
  for (int peer = 0; peer < c.size; ++peer) {
    if (peer == c.rank) continue;
    x.recv(&all[static_cast<std::size_t>(peer)], sizeof(std::uint32_t), peer, 0);
    x.send(&all[static_cast<std::size_t>(c.rank)], sizeof(std::uint32_t), peer, 0);
  }
  x.wait();
  return all;
}

}  // namespace detail

void init(int& argc, char**& argv, InitOptions options) {
  int started = 0, ended = 0;
  MPI_Initialized(&started);
  MPI_Finalized(&ended);
  if (started || ended)
    throw Error(ended ? "weft::dist::init: MPI was already finalized; init once per process"
                      : "weft::dist::init: MPI is already initialized; call init once, before any collective");
  if (options.timeout <= std::chrono::milliseconds(0))
    throw Error(fmt::format("weft::dist::init: the timeout must be positive, got {} ms", options.timeout.count()));
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  detail::Comm& c = detail::comm();
  MPI_Comm_dup(MPI_COMM_WORLD, &c.comm);
  // A failed MPI call returns an error code instead of killing the job, so that weft reports it.
  MPI_Comm_set_errhandler(c.comm, MPI_ERRORS_RETURN);
  MPI_Comm_rank(c.comm, &c.rank);
  MPI_Comm_size(c.comm, &c.size);
  c.timeout = options.timeout;
  c.failed = false;
}

void finalize() {
  detail::Comm& c = detail::comm();
  if (!initialized()) throw Error("weft::dist::finalize: MPI is not initialized; call weft::dist::init first");
  if (c.failed) abort(1);
  barrier();
  MPI_Comm_free(&c.comm);
  c = detail::Comm{};
  MPI_Finalize();
}

void abort(int exit_code) {
  if (initialized()) MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::exit(exit_code);
}

bool initialized() noexcept { return detail::comm().comm != MPI_COMM_NULL; }

int rank() { return detail::comm().rank; }
int size() { return detail::comm().size; }

void barrier() {
  if (size() == 1) return;
  (void)detail::all_gather(0, "barrier");
}

Session::~Session() {
  // During unwinding another rank may wait in a collective that this one will never join.
  if (std::uncaught_exceptions() > 0) abort(1);
  try {
    finalize();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    abort(1);
  }
}

}  // namespace weft::dist
