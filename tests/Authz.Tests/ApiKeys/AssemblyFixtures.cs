// The one real Redis of this test assembly (see Legate.Testing.RedisFixture); registered once, here.
[assembly: AssemblyFixture(typeof(Legate.Testing.RedisFixture))]
