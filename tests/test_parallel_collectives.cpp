// MpiCommunicator's collectives, run under mpiexec -np 2 and -np 4 (RankGrid over MPI, MpiRuntime
// and NCCL: test_parallel_mpi_grid.cpp).
// Expected values are closed forms in rank r and size n (c10d style). Every rank runs every test
// and issues the same collectives; checks use EXPECT so a failing rank keeps issuing them and the
// others do not hang. Only rank 0 prints progress; other ranks print their failures only.
#include <gtest/gtest.h>
#include <mpi.h>

#include <torch/torch.h>

#include "collectives_fixture.h"
#include "mpi_test_main.h"
#include "parallel/mpi_communicator.h"

namespace shardtune::parallel {
namespace {

TEST_F(Collectives, AllReduceSumMaxMinOverDtypesAndSizes) {
  for (torch::ScalarType dtype : kDtypes) {
    for (int64_t size : kSizes) {
      SCOPED_TRACE(std::string(c10::toString(dtype)) + " x " + std::to_string(size));
      const auto opts = torch::TensorOptions().dtype(dtype);
      torch::Tensor sum = torch::full({size}, r_ + 1, opts);
      torch::Tensor max = torch::full({size}, r_ + 1, opts);
      torch::Tensor min = torch::full({size}, r_ + 1, opts);
      world_->all_reduce(sum, ReduceOp::kSum);
      WorkPtr max_work = world_->all_reduce_async(max, ReduceOp::kMax);
      WorkPtr min_work = world_->all_reduce_async(min, ReduceOp::kMin);
      min_work->wait();  // out of issue order is fine: both are in flight together
      wait_by_polling(max_work);
      EXPECT_TRUE(torch::equal(sum, torch::full({size}, triangle(), opts)));
      EXPECT_TRUE(torch::equal(max, torch::full({size}, n_, opts)));
      EXPECT_TRUE(torch::equal(min, torch::full({size}, 1, opts)));
    }
  }
}

TEST_F(Collectives, AllReduceAvgOfFloatingDtypes) {
  for (torch::ScalarType dtype : {torch::kFloat, torch::kDouble}) {
    torch::Tensor t = torch::full({5, 3}, r_ + 1, torch::TensorOptions().dtype(dtype));
    WorkPtr work = world_->all_reduce_async(t, ReduceOp::kAvg);
    work->wait();
    EXPECT_TRUE(torch::allclose(t, torch::full({5, 3}, (n_ + 1) / 2.0, t.options())));
  }
}

TEST_F(Collectives, AllReduceSixteenBitFloatsReduceInFloat32) {
  for (torch::ScalarType dtype : {torch::kBFloat16, torch::kHalf}) {
    SCOPED_TRACE(c10::toString(dtype));
    const auto opts = torch::TensorOptions().dtype(dtype);
    torch::Tensor sum = torch::full({33}, r_ + 1, opts);
    world_->all_reduce(sum, ReduceOp::kSum);
    EXPECT_EQ(sum.scalar_type(), dtype);
    EXPECT_TRUE(torch::equal(sum, torch::full({33}, triangle(), opts)));
    // 1/3 per rank: a float32 sum rounded once is the bf16 of n/3; 16-bit partial sums need not be.
    torch::Tensor third = torch::full({9}, 1.0 / 3.0, opts);
    world_->all_reduce(third, ReduceOp::kSum);
    const torch::Tensor expected =
        (torch::full({9}, 1.0 / 3.0, opts).to(torch::kFloat) * n_).to(dtype);
    EXPECT_TRUE(torch::equal(third, expected));
    torch::Tensor avg = torch::full({4}, r_ + 1, opts);
    world_->all_reduce(avg, ReduceOp::kAvg);
    EXPECT_TRUE(torch::equal(avg, torch::full({4}, (n_ + 1) / 2.0, opts)));
  }
}

TEST_F(Collectives, AllReduceNonContiguousWritesThroughTheView) {
  torch::Tensor base = torch::arange(12, torch::kFloat).view({3, 4}) * (r_ + 1);
  torch::Tensor view = base.t();  // [4, 3], not contiguous
  ASSERT_FALSE(view.is_contiguous());
  WorkPtr work = world_->all_reduce_async(view, ReduceOp::kSum);
  work->wait();
  EXPECT_TRUE(torch::equal(base, torch::arange(12, torch::kFloat).view({3, 4}) * triangle()));
  // A strided slice (every other column) leaves the untouched columns alone.
  torch::Tensor grid = torch::full({4, 6}, r_ + 1, torch::kLong);
  torch::Tensor cols = grid.slice(1, 0, 6, 2);
  world_->all_reduce(cols, ReduceOp::kMax);
  EXPECT_TRUE(torch::equal(grid.slice(1, 0, 6, 2), torch::full({4, 3}, n_, torch::kLong)));
  EXPECT_TRUE(torch::equal(grid.slice(1, 1, 6, 2), torch::full({4, 3}, r_ + 1, torch::kLong)));
}

TEST_F(Collectives, AllReduceZeroDimAndLargeValues) {
  torch::Tensor scalar = torch::tensor(static_cast<double>(r_ + 1));
  world_->all_reduce(scalar);
  EXPECT_EQ(scalar.item<double>(), static_cast<double>(triangle()));
  // int64 beyond 2^32 stays exact.
  const int64_t trillion = 1000000000000LL;
  torch::Tensor big = torch::full({3}, (r_ + 1) * trillion, torch::kLong);
  world_->all_reduce(big, ReduceOp::kSum);
  EXPECT_EQ(big[0].item<int64_t>(), triangle() * trillion);
}

TEST_F(Collectives, EmptyTensorsWorkInEveryCollective) {
  // Empty tensors move nothing but are still collectives that every rank issues in order: each
  // must leave the group in step, so the non-empty all-reduce after it gets its closed form (a
  // backend that skipped an empty collective on some ranks, or matched it with the next one,
  // fails here or hangs).
  auto expect_in_step = [&](const char* after) {
    auto t = torch::full({3}, static_cast<double>(r_ + 1), torch::kDouble);
    world_->all_reduce(t, ReduceOp::kSum);
    EXPECT_TRUE(torch::equal(t, torch::full({3}, static_cast<double>(triangle()), torch::kDouble)))
        << "after an empty " << after;
  };
  torch::Tensor empty = torch::empty({0});
  EXPECT_NO_THROW(world_->all_reduce(empty, ReduceOp::kSum));
  expect_in_step("all_reduce");
  EXPECT_NO_THROW(wait_by_polling(world_->all_reduce_async(empty, ReduceOp::kAvg)));
  expect_in_step("all_reduce_async (avg)");
  torch::Tensor in = torch::empty({0, 3});
  torch::Tensor out = torch::empty({0, 3});
  EXPECT_NO_THROW(world_->all_gather(out, in));
  expect_in_step("all_gather");
  EXPECT_NO_THROW(world_->reduce_scatter(out, in, ReduceOp::kMax));
  expect_in_step("reduce_scatter");
  EXPECT_NO_THROW(world_->broadcast(empty, n_ - 1));
  expect_in_step("broadcast");
  EXPECT_EQ(out.sizes(), torch::IntArrayRef({0, 3}));
  EXPECT_EQ(empty.scalar_type(), torch::kFloat);
  // Arguments are still checked with nothing to move (on every rank alike: no collective runs).
  torch::Tensor one = torch::empty({1, 3});
  EXPECT_THROW(world_->all_gather(one, in), CommunicationError);
}

TEST_F(Collectives, AllGatherConcatenatesInRankOrder) {
  for (torch::ScalarType dtype : {torch::kFloat, torch::kLong, torch::kByte, torch::kBFloat16}) {
    SCOPED_TRACE(c10::toString(dtype));
    const auto opts = torch::TensorOptions().dtype(dtype);
    torch::Tensor in = torch::full({2, 3}, r_ + 1, opts);
    torch::Tensor out = torch::zeros({2 * n_, 3}, opts);
    WorkPtr work = world_->all_gather_async(out, in);
    wait_by_polling(work);
    for (int i = 0; i < n_; ++i) {
      EXPECT_TRUE(torch::equal(out.narrow(0, 2 * i, 2), torch::full({2, 3}, i + 1, opts))) << i;
    }
  }
  // Large, with distinct values: piece i holds i * m + arange(m).
  const int64_t m = 1 << 17;
  torch::Tensor in = torch::arange(m, torch::kDouble) + r_ * m;
  torch::Tensor out = torch::empty({n_ * m}, torch::kDouble);
  world_->all_gather(out, in);
  EXPECT_TRUE(torch::equal(out, torch::arange(n_ * m, torch::kDouble)));
}

TEST_F(Collectives, AllGatherNonContiguousInAndOut) {
  // in: a transposed [3, 2] view; out: a transposed [3, 2n] view of a [2n, 3] buffer.
  torch::Tensor in_base = torch::arange(6, torch::kFloat).view({2, 3}) + 100 * r_;
  torch::Tensor in = in_base.t();
  torch::Tensor out_base = torch::zeros({2 * n_, 3});
  torch::Tensor out = out_base.t();
  ASSERT_FALSE(in.is_contiguous());
  ASSERT_FALSE(out.is_contiguous());
  world_->all_gather(out, in);
  // out, read in row-major order, is piece 0 then piece 1 ... each being `in` in row-major order.
  torch::Tensor expected = torch::cat(
      [&] {
        std::vector<torch::Tensor> pieces;
        for (int i = 0; i < n_; ++i) {
          torch::Tensor piece = torch::arange(6, torch::kFloat).view({2, 3}) + 100 * i;
          pieces.push_back(piece.t().reshape(-1));
        }
        return pieces;
      }());
  EXPECT_TRUE(torch::equal(out.reshape(-1), expected));
}

TEST_F(Collectives, AllGatherFromThisRanksShardOfTheOutput) {
  // ZeRO-style: each rank updates its shard of a flat buffer, then gathers the buffer in place.
  const int64_t shard = 5;
  torch::Tensor buffer = torch::zeros({n_ * shard});
  torch::Tensor mine = buffer.narrow(0, r_ * shard, shard);
  mine.fill_(r_ + 1);
  world_->all_gather(buffer, mine);
  for (int i = 0; i < n_; ++i) {
    EXPECT_TRUE(torch::equal(buffer.narrow(0, i * shard, shard), torch::full({shard}, i + 1)));
  }
  // in overlapping out at the wrong place is staged, not corrupted.
  torch::Tensor buffer2 = torch::zeros({n_ * shard});
  buffer2.narrow(0, 0, shard).fill_(r_ + 1);
  torch::Tensor first = buffer2.narrow(0, 0, shard);
  world_->all_gather(buffer2, first);
  for (int i = 0; i < n_; ++i) {
    EXPECT_TRUE(torch::equal(buffer2.narrow(0, i * shard, shard), torch::full({shard}, i + 1)));
  }
}

TEST_F(Collectives, ReduceScatterGivesRankRItsReducedPiece) {
  for (torch::ScalarType dtype : {torch::kFloat, torch::kDouble, torch::kInt, torch::kLong}) {
    for (int64_t m : {1, 3, 1000}) {
      SCOPED_TRACE(std::string(c10::toString(dtype)) + " x " + std::to_string(m));
      const auto opts = torch::TensorOptions().dtype(dtype);
      // in[i] = i * (r + 1): the sum over ranks is i * n(n+1)/2, max is i * n, min is i.
      torch::Tensor in = torch::arange(n_ * m, opts) * (r_ + 1);
      torch::Tensor mine = torch::arange(r_ * m, (r_ + 1) * m, opts);
      torch::Tensor sum = torch::empty({m}, opts);
      torch::Tensor max = torch::empty({m}, opts);
      torch::Tensor min = torch::empty({m}, opts);
      WorkPtr sum_work = world_->reduce_scatter_async(sum, in, ReduceOp::kSum);
      WorkPtr max_work = world_->reduce_scatter_async(max, in, ReduceOp::kMax);
      world_->reduce_scatter(min, in, ReduceOp::kMin);
      wait_by_polling(max_work);
      sum_work->wait();
      EXPECT_TRUE(torch::equal(sum, mine * triangle()));
      EXPECT_TRUE(torch::equal(max, mine * n_));
      EXPECT_TRUE(torch::equal(min, mine));
    }
  }
  torch::Tensor in = torch::full({n_ * 4}, r_ + 1, torch::kFloat);
  torch::Tensor avg = torch::empty({4});
  world_->reduce_scatter(avg, in, ReduceOp::kAvg);
  EXPECT_TRUE(torch::allclose(avg, torch::full({4}, (n_ + 1) / 2.0)));
}

TEST_F(Collectives, ReduceScatterNonContiguousAndSixteenBit) {
  // in: transposed [3, 2n] view of a [2n, 3] tensor; out: transposed [3, 2] view.
  torch::Tensor in_base = torch::arange(6 * n_, torch::kFloat).view({2 * n_, 3}) * (r_ + 1);
  torch::Tensor in = in_base.t();
  torch::Tensor out_base = torch::zeros({2, 3});
  torch::Tensor out = out_base.t();
  world_->reduce_scatter(out, in, ReduceOp::kSum);
  // Row-major order of `in` picks this rank's 6 elements; out receives them in its row-major order.
  torch::Tensor expected = in.reshape(-1).narrow(0, 6 * r_, 6) / (r_ + 1) * triangle();
  EXPECT_TRUE(torch::equal(out.reshape(-1), expected));

  torch::Tensor half_in = torch::full({n_ * 8}, r_ + 1, torch::kBFloat16);
  torch::Tensor half_out = torch::empty({8}, torch::kBFloat16);
  world_->reduce_scatter(half_out, half_in, ReduceOp::kSum);
  EXPECT_TRUE(torch::equal(half_out, torch::full({8}, triangle(), torch::kBFloat16)));

  // out aliasing this rank's piece of in: staged, so the result is still right.
  torch::Tensor flat = torch::arange(n_ * 4, torch::kDouble) * (r_ + 1);
  torch::Tensor piece = flat.narrow(0, r_ * 4, 4);
  world_->reduce_scatter(piece, flat, ReduceOp::kSum);
  EXPECT_TRUE(torch::equal(piece, torch::arange(r_ * 4, r_ * 4 + 4, torch::kDouble) * triangle()));
}

TEST_F(Collectives, BroadcastFromEveryRoot) {
  for (int root = 0; root < n_; ++root) {
    torch::Tensor t = torch::full({1237}, r_ == root ? 42 + root : -1, torch::kLong);
    WorkPtr work = world_->broadcast_async(t, root);
    wait_by_polling(work);
    EXPECT_TRUE(torch::equal(t, torch::full({1237}, 42 + root, torch::kLong))) << root;

    // Non-contiguous, 16-bit: moves bit for bit.
    torch::Tensor base = r_ == root ? torch::arange(12, torch::kFloat).view({3, 4})
                                    : torch::zeros({3, 4});
    base = base.to(torch::kHalf);
    torch::Tensor view = base.t();
    world_->broadcast(view, root);
    EXPECT_TRUE(torch::equal(base, torch::arange(12, torch::kFloat).view({3, 4}).to(torch::kHalf)));
  }
}

TEST_F(Collectives, ManyOutstandingWorksAndDroppedHandles) {
  std::vector<torch::Tensor> tensors;
  std::vector<WorkPtr> works;
  for (int i = 0; i < 8; ++i) {
    tensors.push_back(torch::full({1000 + i}, (r_ + 1) * (i + 1), torch::kFloat));
    works.push_back(world_->all_reduce_async(tensors.back(), ReduceOp::kSum));
  }
  for (int i = 7; i >= 0; --i) works[i]->wait();
  for (int i = 0; i < 8; ++i) {
    EXPECT_TRUE(torch::equal(tensors[i], torch::full({1000 + i}, triangle() * (i + 1))));
  }
  // Dropping an unfinished handle waits for it, so the staged copy-back still happens.
  torch::Tensor base = torch::full({4, 2}, r_ + 1.0);
  torch::Tensor view = base.t();
  world_->all_reduce_async(view, ReduceOp::kSum).reset();
  EXPECT_TRUE(torch::equal(base, torch::full({4, 2}, static_cast<double>(triangle()))));
  world_->barrier();
}

TEST_F(Collectives, ArgumentErrorsAreThrownBeforeCommunicating) {
  torch::Tensor ints = torch::ones({3}, torch::kInt);
  torch::Tensor bools = torch::ones({3}, torch::kBool);
  torch::Tensor t = torch::ones({3});
  torch::Tensor wrong = torch::ones({3 * n_ + 1});
  EXPECT_THROW(world_->all_reduce(ints, ReduceOp::kAvg), CommunicationError);
  EXPECT_THROW(world_->all_reduce(bools, ReduceOp::kSum), CommunicationError);
  EXPECT_THROW(world_->all_gather(wrong, t), CommunicationError);
  EXPECT_THROW(world_->reduce_scatter(t, wrong), CommunicationError);
  EXPECT_THROW(world_->broadcast(t, n_), CommunicationError);
  EXPECT_THROW(world_->broadcast(t, -1), CommunicationError);
  try {
    world_->all_reduce(ints, ReduceOp::kAvg);
  } catch (const CommunicationError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("all_reduce on mpi:world rank " + std::to_string(r_) + "/" +
                        std::to_string(n_)),
              std::string::npos)
        << what;
  }
  // The communicator still works afterwards.
  torch::Tensor ok = torch::full({2}, r_ + 1.0);
  world_->all_reduce(ok);
  EXPECT_TRUE(torch::equal(ok, torch::full({2}, static_cast<double>(triangle()))));
}

}  // namespace
}  // namespace shardtune::parallel
