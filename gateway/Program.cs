using Legate.Gateway;

return Cli.Run(args, Console.Out, Console.Error);
