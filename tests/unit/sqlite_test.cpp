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
  auto p = r.db->prepare("PRAGMA journal_mode");
  ASSERT_TRUE(p.status);
  ASSERT_TRUE(p.stmt.step().row);
  EXPECT_EQ(p.stmt.text(0), "wal");
}

TEST_F(SqliteTest, MigrationsRunOnceEachInOrder) {
  std::vector<std::string> v1 = {"CREATE TABLE a (k TEXT PRIMARY KEY, v TEXT)"};
  std::vector<std::string> v2 = {v1[0], "ALTER TABLE a ADD COLUMN n INTEGER DEFAULT 0"};
  {
    auto r = Db::open(path());
    ASSERT_TRUE(r.db->migrate("meta", v1));
    EXPECT_EQ(r.db->schema_version("meta"), 1);
    ASSERT_TRUE(r.db->migrate("meta", v1));  // idempotent
  }
  auto r = Db::open(path());  // a later build with one more step
  ASSERT_TRUE(r.db->migrate("meta", v2));
  EXPECT_EQ(r.db->schema_version("meta"), 2);
  EXPECT_EQ(r.db->schema_version("other"), 0);
  ASSERT_TRUE(r.db->exec("INSERT INTO a(k, v, n) VALUES('x', 'y', 3)"));
  Status s = r.db->migrate("meta", v1);  // an older build
  EXPECT_EQ(s.code(), Code::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("newer than this build knows"));
}

TEST_F(SqliteTest, FailedMigrationStepLeavesTheVersion) {
  auto r = Db::open(path());
  Status s = r.db->migrate("x", {"CREATE TABLE t (a)", "THIS IS NOT SQL"});
  EXPECT_FALSE(s);
  EXPECT_THAT(s.message(), HasSubstr("THIS IS NOT SQL"));
  EXPECT_EQ(r.db->schema_version("x"), 1);
}

TEST_F(SqliteTest, StatementsBindAndRead) {
  auto r = Db::open(path());
  ASSERT_TRUE(r.db->exec("CREATE TABLE t (k TEXT, n INTEGER, b BLOB)"));
  auto ins = r.db->prepare("INSERT INTO t VALUES(?, ?, ?)");
  ASSERT_TRUE(ins.status);
  std::string blob("a\0b", 3);
  ins.stmt.bind(1, "key").bind(2, int64_t{42}).bind_blob(3, blob);
  ASSERT_TRUE(ins.stmt.run());
  ins.stmt.reset();
  ins.stmt.bind(1, "null").bind_null(2).bind_null(3);
  ASSERT_TRUE(ins.stmt.run());
  auto sel = r.db->prepare("SELECT k, n, b FROM t ORDER BY rowid");
  ASSERT_TRUE(sel.stmt.step().row);
  EXPECT_EQ(sel.stmt.text(0), "key");
  EXPECT_EQ(sel.stmt.int64(1), 42);
  EXPECT_EQ(sel.stmt.text(2), blob);
  ASSERT_TRUE(sel.stmt.step().row);
  EXPECT_TRUE(sel.stmt.is_null(1));
  EXPECT_FALSE(sel.stmt.step().row);
}

TEST_F(SqliteTest, TransactionRollsBackUnlessCommitted) {
  auto r = Db::open(path());
  ASSERT_TRUE(r.db->exec("CREATE TABLE t (n INTEGER)"));
  {
    Transaction tx(*r.db);
    ASSERT_TRUE(r.db->exec("INSERT INTO t VALUES(1)"));
  }
  {
    Transaction tx(*r.db);
    ASSERT_TRUE(r.db->exec("INSERT INTO t VALUES(2)"));
    ASSERT_TRUE(tx.commit());
  }
  auto sel = r.db->prepare("SELECT group_concat(n) FROM t");
  ASSERT_TRUE(sel.stmt.step().row);
  EXPECT_EQ(sel.stmt.text(0), "2");
}

TEST_F(SqliteTest, ErrorsNameTheFileAndTheStatement) {
  auto r = Db::open("/proc/kedge-no/x.db");
  EXPECT_FALSE(r.status);
  EXPECT_THAT(r.status.message(), HasSubstr("/proc/kedge-no/x.db"));
  auto ok = Db::open(path());
  auto p = ok.db->prepare("SELEKT 1");
  EXPECT_FALSE(p.status);
  EXPECT_THAT(p.status.message(), HasSubstr("t.db"));
  EXPECT_THAT(p.status.message(), HasSubstr("SELEKT 1"));
}

}  // namespace
}  // namespace kedge::sqlite
