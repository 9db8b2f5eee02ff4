#include "kedge/common/sqlite.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

namespace kedge::sqlite {
namespace {

using ::testing::HasSubstr;

class SqliteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("kedge-sqlite-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path() const { return (dir_ / "t.db").string(); }
  std::filesystem::path dir_;
};

TEST_F(SqliteTest, OpensInWalMode) {
  auto r = Db::open(path());
  ASSERT_TRUE(r.status) << r.status.message();
  auto p = r.value->prepare("PRAGMA journal_mode");
  ASSERT_TRUE(p.status);
  ASSERT_TRUE(p.value.step().row);
  EXPECT_EQ(p.value.text(0), "wal");
}

TEST_F(SqliteTest, MigrationsRunOnceEachInOrder) {
  std::vector<std::string> v1 = {"CREATE TABLE a (k TEXT PRIMARY KEY, v TEXT)"};
  std::vector<std::string> v2 = {v1[0], "ALTER TABLE a ADD COLUMN n INTEGER DEFAULT 0"};
  {
    auto r = Db::open(path());
    ASSERT_TRUE(r.value->migrate("meta", v1));
    EXPECT_EQ(r.value->schema_version("meta"), 1);
    ASSERT_TRUE(r.value->migrate("meta", v1));  // idempotent
  }
  auto r = Db::open(path());  // a later build with one more step
  ASSERT_TRUE(r.value->migrate("meta", v2));
  EXPECT_EQ(r.value->schema_version("meta"), 2);
  EXPECT_EQ(r.value->schema_version("other"), 0);
  ASSERT_TRUE(r.value->exec("INSERT INTO a(k, v, n) VALUES('x', 'y', 3)"));
  Status s = r.value->migrate("meta", v1);  // an older build
  EXPECT_EQ(s.code(), Code::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("newer than this build knows"));
}

TEST_F(SqliteTest, FailedMigrationStepLeavesTheVersion) {
  auto r = Db::open(path());
  Status s = r.value->migrate("x", {"CREATE TABLE t (a)", "THIS IS NOT SQL"});
  EXPECT_FALSE(s);
  EXPECT_THAT(s.message(), HasSubstr("THIS IS NOT SQL"));
  EXPECT_EQ(r.value->schema_version("x"), 1);
}

TEST_F(SqliteTest, StatementsBindAndRead) {
  auto r = Db::open(path());
  ASSERT_TRUE(r.value->exec("CREATE TABLE t (k TEXT, n INTEGER, b BLOB)"));
  auto ins = r.value->prepare("INSERT INTO t VALUES(?, ?, ?)");
  ASSERT_TRUE(ins.status);
  std::string blob("a\0b", 3);
  ins.value.bind(1, "key").bind(2, int64_t{42}).bind_blob(3, blob);
  ASSERT_TRUE(ins.value.run());
  ins.value.reset();
  ins.value.bind(1, "null").bind_null(2).bind_null(3);
  ASSERT_TRUE(ins.value.run());
  auto sel = r.value->prepare("SELECT k, n, b FROM t ORDER BY rowid");
  ASSERT_TRUE(sel.value.step().row);
  EXPECT_EQ(sel.value.text(0), "key");
  EXPECT_EQ(sel.value.int64(1), 42);
  EXPECT_EQ(sel.value.text(2), blob);
  ASSERT_TRUE(sel.value.step().row);
  EXPECT_TRUE(sel.value.is_null(1));
  EXPECT_FALSE(sel.value.step().row);
}

TEST_F(SqliteTest, TransactionRollsBackUnlessCommitted) {
  auto r = Db::open(path());
  ASSERT_TRUE(r.value->exec("CREATE TABLE t (n INTEGER)"));
  {
    Transaction tx(*r.value);
    ASSERT_TRUE(r.value->exec("INSERT INTO t VALUES(1)"));
  }
  {
    Transaction tx(*r.value);
    ASSERT_TRUE(r.value->exec("INSERT INTO t VALUES(2)"));
    ASSERT_TRUE(tx.commit());
  }
  auto sel = r.value->prepare("SELECT group_concat(n) FROM t");
  ASSERT_TRUE(sel.value.step().row);
  EXPECT_EQ(sel.value.text(0), "2");
}

TEST_F(SqliteTest, ErrorsNameTheFileAndTheStatement) {
  auto r = Db::open("/proc/kedge-no/x.db");
  EXPECT_FALSE(r.status);
  EXPECT_THAT(r.status.message(), HasSubstr("/proc/kedge-no/x.db"));
  auto ok = Db::open(path());
  auto p = ok.value->prepare("SELEKT 1");
  EXPECT_FALSE(p.status);
  EXPECT_THAT(p.status.message(), HasSubstr("t.db"));
  EXPECT_THAT(p.status.message(), HasSubstr("SELEKT 1"));
}

}  // namespace
}  // namespace kedge::sqlite
