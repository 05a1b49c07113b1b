// The one real Redis of this test assembly (see Legate.Testing.RedisFixture), for the `legate keys --redis` tests.
[assembly: AssemblyFixture(typeof(Legate.Testing.RedisFixture))]
